"""Walk a model's weights in forward order, re-collecting the inputs of each layer from the
model as already reconstructed (SparseGPT's "sequential" calibration): layer k+1 learns to
compensate what was done to layers 0..k.

    outcomes = reconstruct_weights_(model, names, calibration, rule_for, damp=0.01)

`rule_for(name, W (rows, cols), H (cols, cols)) -> ColumnRule` says what each weight
becomes; the walk (obs.py) writes the new weights in place. Atomic: if anything fails, every
weight is restored before the error propagates.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rnnslim.reconstruct.hessian import collect_hessians, module_of
from rnnslim.reconstruct.obs import ColumnRule, obs_walk
from rnnslim.utils.progress import progress_bar

RuleFor = Callable[[str, Tensor, Tensor], ColumnRule]
_LAYER = re.compile(r"_l(\d+)(_reverse)?$")


@dataclass
class Outcome:
    """What the walk did to one weight: the rule used, kept mask (rows, cols), and the
    relative output error on the calibration inputs, tr(dW H dW^T) / tr(W H W^T)."""

    rule: ColumnRule
    kept: Tensor
    rel_error: float


def forward_groups(model: nn.Module, names: Sequence[str]) -> list[list[str]]:
    """`names` grouped by (module, layer of a multi-layer recurrent module), in model order."""
    order = {path: i for i, (path, _) in enumerate(model.named_modules())}

    def key(n: str) -> tuple[int, int]:
        m = _LAYER.search(n)
        return order.get(module_of(n), len(order)), int(m.group(1)) if m else 0

    groups: dict[tuple[int, int], list[str]] = {}
    for n in sorted(names, key=key):
        groups.setdefault(key(n), []).append(n)
    return list(groups.values())


def _relative_error(w: Tensor, new: Tensor, H: Tensor) -> float:
    d = (w - new).double()
    num = torch.einsum("ri,ij,rj->", d, H, d)
    den = torch.einsum("ri,ij,rj->", w.double(), H, w.double())
    return float(num / den) if den > 0 else 0.0


@torch.no_grad()
def reconstruct_weights_(model: nn.Module, names: Sequence[str], calibration, rule_for: RuleFor,
                         damp: float = 0.01, block: int = 128, sequential: bool = True,
                         progress: bool = False, desc: str = "reconstruct") -> dict[str, Outcome]:
    """Apply `rule_for`'s rule to each weight in `names` with OBS compensation; see module doc.
    `calibration`: an rnnslim.prune.importance.Calibration (batches + stateful); progress: a
    bar over the weights on stderr (terminals only) with each one's relative output error."""
    params = {n: model.get_parameter(n) for n in names}
    backup = {n: p.detach().clone() for n, p in params.items()}
    groups = forward_groups(model, names) if sequential else [list(names)]
    outcomes: dict[str, Outcome] = {}
    bar = progress_bar(total=len(params), desc=desc, enabled=progress)
    try:
        for group in groups:
            hs = collect_hessians(model, calibration.batches, group, calibration.stateful)
            for n in group:
                p = params[n]
                w = p.detach().float().reshape(p.shape[0], -1).cpu()
                H = hs[n].float()
                rule = rule_for(n, w, H)
                new, kept = obs_walk(w, H, rule, block=block, damp=damp)
                outcomes[n] = Outcome(rule, kept.reshape(p.shape), _relative_error(w, new, hs[n]))
                p.copy_(new.reshape(p.shape).to(p.dtype))
                bar.update(1, weight=n.rpartition(".")[2], rel_error=outcomes[n].rel_error)
    except BaseException:
        for n, p in params.items():
            p.copy_(backup[n])
        raise
    finally:
        bar.close()
    return outcomes
