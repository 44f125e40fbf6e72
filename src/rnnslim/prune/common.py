"""Steps shared by every mask-producing method: score the targets, apply, report."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from rnnslim.prune.importance import Criterion, Scores, score_model
from rnnslim.prune.masks import Masks, apply_masks_, sparsity_report
from rnnslim.prune.targets import TargetKind, refuse_transform_coded, target_names
from rnnslim.results import EditResult


@dataclass
class PruneResult(EditResult):
    """What a pruning call did: the masks it applied (True = kept) and a report
    {"method": {...}, "tensors": {name: {shape, numel, nonzero, sparsity}}, "total": ..., "model": ...};
    the common core (changed paths, stored bytes, warnings) of rnnslim.results.EditResult."""

    masks: Masks
    report: dict = field(default_factory=dict)

    def __str__(self) -> str:
        lines = [f"{self.report.get('method', {})}"]
        for name, r in self.report.get("tensors", {}).items():
            lines.append(f"  {name:40s} {str(tuple(r['shape'])):14s} sparsity {r['sparsity']:.3f}")
        t = self.report.get("total")
        if t:
            lines.append(f"  total over targets: {t['nonzero']:,} of {t['numel']:,} kept "
                         f"(sparsity {t['sparsity']:.3f})")
        return "\n".join(lines)


def score_targets(model: nn.Module, criterion: Criterion | str, targets: Sequence[TargetKind],
                  layers: Sequence[int] | None, calibration, n_batches: int) -> tuple[list[str], Scores]:
    """Names of the targeted tensors and their scores (NaN scores count as least important)."""
    names = target_names(model, targets, layers)
    if not names:
        raise ValueError(f"no tensors of kinds {[TargetKind(t).value for t in targets]} "
                         f"{'in layers ' + str(list(layers)) + ' ' if layers is not None else ''}found in the model")
    refuse_transform_coded(model, names)
    scores = score_model(model, criterion, calibration, names=names, n_batches=n_batches)
    return names, {n: torch.nan_to_num(s.float(), nan=float("-inf")) for n, s in scores.items()}


def finish(model: nn.Module, masks: Masks, method: dict) -> PruneResult:
    """Apply `masks` in place and report per-tensor sparsity."""
    apply_masks_(model, masks)
    return PruneResult(masks, {"method": method, **sparsity_report(model, list(masks))})


def as_rows(t: Tensor) -> Tensor:
    """2-D view (shape[0], rest) of a weight; dim 1 is the input dimension of Linear/RNN weights."""
    return t.reshape(t.shape[0], -1) if t.dim() > 1 else t.reshape(1, -1)
