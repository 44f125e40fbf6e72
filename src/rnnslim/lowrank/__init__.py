"""Low-rank factorization of recurrent models: SVD of the gate matrices and the head
(`lowrank_`), conversion of LSTM layers to LSTMP (`to_lstmp_`). See lowrank/api.py for the
verbs, lowrank/sites.py for what is cut and how, lowrank/svd.py for rank choice.

    from rnnslim.lowrank import LowRank, lowrank_, ToLSTMP, to_lstmp_
    result = lowrank_(model, LowRank(targets=["input", "recurrent"], max_params=1_100_000))
    print(result.ranks, result.params_after)
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

__all__ = ["LowRank", "LowRankResult", "LowRankScope", "LowRankTarget", "SiteRecord", "ToLSTMP", "lowrank_", "params",
           "to_lstmp_"]
