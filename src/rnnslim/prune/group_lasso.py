"""Group-lasso fine-tuning that drives whole hidden units to zero ("intrinsic sparse
structures", Wen et al., ICLR 2018), then removal of the units that died.

The group of unit k of a layer is every weight that goes away with it (its gate rows in
all directions, its recurrent / projection column, its consumers' columns: exactly the
slices of graph/groups.py, each weight counted once). The penalty

    lambda * sum over layers, units k of ||w_group(k)||_2

added to the task loss (TrainHooks.extra_loss) pushes whole groups towards zero, so that
removing them afterwards changes the model little. Train with SGD, as Wen et al. do:
Adam's per-weight normalisation lets the task gradient's noise swamp the penalty's small,
steady pull (measured on a toy LM: 14 % lower unit norms with AdamW at any lambda, 45 %
with SGD at lambda 0.03).

    lasso = GroupLasso(model, lam=1e-4)
    train(model, task, cfg, hooks=TrainHooks(extra_loss=[lasso]))
    remove_dead_units_(model, threshold=1e-2)

or both in one call, all or nothing (the final weights are cut, not the best checkpoint: an
earlier one has fewer dead units):

    prune_(model, GroupLassoPruning(lam=0.03, threshold=1e-2, train=TrainConfig(optimizer="sgd", ...)), task=task)
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from rnnslim.graph.coupling import GroupKind
from rnnslim.graph.groups import UnitGroup
from rnnslim.prune.structured import (
    StructuredResult,
    keep_units_,
    resolve_keys,
    unit_groups,
)
from rnnslim.prune.structured.select import top_units, unit_sums
from rnnslim.train import TrainConfig, TrainHooks, TrainResult, train
from rnnslim.utils.atomic import atomic_edit
from rnnslim.verbs import Family, register


def _chosen(model: nn.Module, layers, example_inputs, consumers) -> list[UnitGroup]:
    groups = unit_groups(model, example_inputs, consumers)
    if layers is not None:
        groups = [g for gs in resolve_keys(groups, list(layers)).values() for g in gs]
    return [g for g in groups if g.kind is GroupKind.HIDDEN and not g.blocked]


def group_norms(model: nn.Module, groups: list[UnitGroup], eps: float = 1e-12) -> dict[str, Tensor]:
    """{group name: (units,) L2 norm of each unit's coupled weights} (differentiable; eps
    inside the square root keeps the gradient finite at zero)."""
    params = dict(model.named_parameters())
    return {g.name: (unit_sums(g, {s.param: params[s.param] for s in g.slices}, square=True).clamp_min(0) + eps).sqrt()
            for g in groups}


class GroupLasso:
    """extra_loss hook: lam * sum of unit group norms over the chosen layers.

    The groups are found once, at construction; the hook does not survive a structural
    edit of the model (build a new one).
    """

    def __init__(self, model: nn.Module, lam: float, layers=None, example_inputs: tuple | None = None,
                 consumers: dict | None = None) -> None:
        if lam < 0:
            raise ValueError(f"lam must be >= 0, got {lam}")
        self.lam = float(lam)
        self.groups = _chosen(model, layers, example_inputs, consumers)

    def penalty(self, model: nn.Module) -> Tensor:
        return sum(n.sum() for n in group_norms(model, self.groups).values())

    def __call__(self, model: nn.Module, batch=None, outputs=None) -> Tensor:
        return self.lam * self.penalty(model)


def remove_dead_units_(model: nn.Module, threshold: float, relative: bool = False, round_to: int = 1,
                       layers=None, example_inputs: tuple | None = None, consumers: dict | None = None
                       ) -> StructuredResult:
    """Remove units whose group norm is below `threshold` (times the layer's largest norm
    when `relative`). Kept counts are rounded up to a multiple of round_to (at most the
    layer size); every layer keeps at least one unit (its strongest)."""
    groups = _chosen(model, layers, example_inputs, consumers)
    with torch.no_grad():
        norms = group_norms(model, groups, eps=0.0)
    counts = {}
    for g in groups:
        n = norms[g.name]
        limit = threshold * float(n.max()) if relative else threshold
        alive = max(int((n >= limit).sum()), 1)
        counts[g.name] = min(g.size, -(-alive // round_to) * round_to)  # round up: never drop a live unit
    for g in groups:  # layers of one multi-layer torch module share a size: keep the largest count
        if g.tie:
            counts[g.name] = max(counts[h.name] for h in groups if h.tie == g.tie)
    keep = {g.name: top_units(norms[g.name].double().cpu(), counts[g.name]).tolist() for g in groups}
    return keep_units_(model, keep, example_inputs=example_inputs, consumers=consumers)


class GroupLassoPruning(BaseModel):
    """Fine-tune with the group-lasso penalty (lam), then remove the units whose group norm
    fell below threshold (times the layer's largest norm when relative)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    lam: float = Field(gt=0, description="penalty weight (Wen et al.: SGD, lam around 0.03 on a small LM)")
    train: TrainConfig
    threshold: float = Field(default=1e-2, gt=0)
    relative: bool = False
    round_to: int = Field(default=1, ge=1)
    layers: tuple[int | str, ...] | None = None


@dataclass
class GroupLassoResult(StructuredResult):
    train: TrainResult | None = None  # the fine-tuning run with the penalty


@register(Family.PRUNE, GroupLassoPruning)
def _prune_group_lasso(model: nn.Module, cfg: GroupLassoPruning, task, example_inputs: tuple | None = None,
                       consumers: dict | None = None, progress: bool = False) -> GroupLassoResult:
    """rnnslim.prune_(model, GroupLassoPruning(...), task=task): train with the penalty, cut, all or nothing."""
    with atomic_edit(model):
        lasso = GroupLasso(model, cfg.lam, cfg.layers, example_inputs, consumers)
        run = train(model, task, cfg.train, hooks=TrainHooks(extra_loss=[lasso]), progress=progress,
                    desc="group lasso")
        cut = remove_dead_units_(model, cfg.threshold, cfg.relative, cfg.round_to, cfg.layers, example_inputs,
                                 consumers)
    return GroupLassoResult(**{f.name: getattr(cut, f.name) for f in fields(cut)}, train=run)
