"""Which units to keep: unit scores from per-weight scores, and counts per layer.

Unit importance is aggregated from per-weight scores over every tensor slice the unit
owns (gate rows in all directions, its recurrent / projection columns, its consumers'
columns): L1 = sum of |score|, L2 = sqrt(sum of score^2) (the unit's group norm). The
per-weight scores are a dict {parameter name: tensor shaped like the parameter}; a
missing name means |W| (magnitude), so Taylor / Fisher scores can be plugged in.

Counts: a ratio r removes round(r * n) of a layer's n units ("layer" scope), or the
round(r * total) lowest-scored units over all chosen layers ("global" scope, optionally
with each layer's scores divided by its mean so layers of different scale compete
fairly). Kept counts are rounded to a multiple of `round_to` (nearest, never above n,
at least min(round_to, n)). Layers of one multi-layer torch module must keep the same
count: in global scope their counts are averaged.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnslim.graph.groups import UnitGroup


def unit_scores(model: nn.Module, group: UnitGroup, scores: dict[str, Tensor] | None = None, l2: bool = False) -> Tensor:
    """(group.size,) float64 importance of each unit of `group`."""
    params = dict(model.named_parameters())
    total = torch.zeros(group.size, dtype=torch.float64)
    for s in group.slices:
        p = params[s.param]
        sc = (scores or {}).get(s.param)
        sc = p.detach().abs() if sc is None else sc.detach()
        if tuple(sc.shape) != tuple(p.shape):
            raise ValueError(f"score for {s.param} has shape {tuple(sc.shape)}, the parameter {tuple(p.shape)}")
        v = sc.double().cpu()
        v = v * v if l2 else v.abs()
        per_pos = v.movedim(s.dim, 0).reshape(v.shape[s.dim], -1).sum(1)  # (positions,)
        own = s.units >= 0
        total.index_add_(0, s.units[own], per_pos[own])
    return total.sqrt() if l2 else total


def round_count(keep: float, size: int, multiple: int) -> int:
    k = int(round(keep / multiple)) * multiple if multiple > 1 else int(round(keep))
    return min(size, max(k, min(multiple, size), 1))


def top_units(score: Tensor, count: int) -> Tensor:
    """Indices (sorted) of the `count` highest scores; ties keep the lower index."""
    order = torch.sort(-score, stable=True).indices
    return torch.sort(order[:count]).values


def layer_counts(groups: list[UnitGroup], ratios: dict[str, float], multiple: int) -> dict[str, int]:
    counts = {g.name: round_count(g.size * (1 - ratios[g.name]), g.size, multiple) for g in groups}
    return _tie(groups, counts, multiple)


def global_counts(groups: list[UnitGroup], scores: dict[str, Tensor], ratio: float, multiple: int,
                  normalize: bool) -> dict[str, int]:
    """Remove the round(ratio * total) lowest-scored units over all groups, then round per group."""
    pooled = []
    for g in groups:
        s = scores[g.name]
        s = s / s.mean().clamp_min(1e-30) if normalize else s
        pooled += [(float(v), g.name) for v in s]
    n_remove = int(round(ratio * len(pooled)))
    removed: dict[str, int] = {g.name: 0 for g in groups}
    for _, name in sorted(pooled, key=lambda t: t[0])[:n_remove]:
        removed[name] += 1
    counts = {g.name: round_count(g.size - removed[g.name], g.size, multiple) for g in groups}
    return _tie(groups, counts, multiple)


def _tie(groups: list[UnitGroup], counts: dict[str, int], multiple: int) -> dict[str, int]:
    """Groups of one multi-layer torch module get one shared count (the rounded mean)."""
    ties: dict[tuple, list[UnitGroup]] = {}
    for g in groups:
        if g.tie:
            ties.setdefault((g.tie, g.kind), []).append(g)
    for members in ties.values():
        mean = sum(counts[g.name] for g in members) / len(members)
        shared = round_count(mean, min(g.size for g in members), multiple)
        for g in members:
            counts[g.name] = shared
    return counts
