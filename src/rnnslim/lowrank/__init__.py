"""Low-rank factorization of recurrent models: SVD of the gate matrices and the head
(`lowrank_`), conversion of LSTM layers to LSTMP (`to_lstmp_`), and the nn.Linear layers of
any module, the user's own included (`lowrank_linears_`, lowrank/linear.py). See lowrank/api.py
for the verbs, lowrank/sites.py for what is cut and how, lowrank/svd.py for rank choice.

    import rnnslim
    from rnnslim.lowrank import LowRank, ToLSTMP
    result = rnnslim.factorize_(model, LowRank(targets=["input", "recurrent"], max_params=1_100_000))
    print(result.ranks, result.params_after, result.headline())

`rnnslim.factorize_` (rnnslim.verbs) takes LowRank, ToLSTMP and LowRankLinears (and the
transform-domain configs); `lowrank_`, `to_lstmp_` and `lowrank_linears_` are the same
dispatch limited to one config each. All return a LowRankResult (an rnnslim.results.EditResult).
"""

from rnnslim.lowrank.api import (
    LowRank,
    LowRankResult,
    LowRankScope,
    LowRankTarget,
    SiteRecord,
    ToLSTMP,
    lowrank_,
    params,
    to_lstmp_,
)
from rnnslim.lowrank.linear import LowRankLinear, LowRankLinears, lowrank_linears_

__all__ = ["LowRank", "LowRankLinear", "LowRankLinears", "LowRankResult", "LowRankScope", "LowRankTarget", "SiteRecord",
           "ToLSTMP", "lowrank_", "lowrank_linears_", "params", "to_lstmp_"]
