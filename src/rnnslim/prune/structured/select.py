"""Which units to keep: unit scores from per-weight scores, and counts per layer.

Unit importance is aggregated from per-weight scores over every tensor slice the unit
owns (gate rows in all directions, its recurrent / projection columns, its consumers'
columns): L1 = sum of |score|, L2 = sqrt(sum of score^2) (the unit's group norm). The
per-weight scores are a dict {parameter name: tensor shaped like the parameter}; a
missing name means |W| (magnitude), so Taylor / Fisher scores can be plugged in.

Counts: a ratio r removes round(r * n) of a layer's n units ("layer" scope), or the
round(r * total) lowest-scored units over all chosen layers ("global" scope; by default
each layer's scores are divided by their mean first: a unit's raw score grows with its
fan-out, so without it the layer feeding a small decoder loses nearly everything; on
chargru-512x2 at 50 % raw L1 kept 511 + 1 units, valid loss 4.03 nats, normalised
277 + 235, 2.65 nats). Kept counts are rounded to a multiple of `round_to` (nearest, never above n,
at least min(round_to, n); halves round up). Layers of one multi-layer torch module must keep the same
count: in global scope their counts are averaged; different
explicit per-layer ratios on such a module are refused when the cut is applied.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from rnnslim.graph.groups import UnitGroup


def unit_sums(group: UnitGroup, values: dict[str, Tensor], square: bool) -> Tensor:
    """(group.size,) sum over each unit's weights of |v| (or v^2), every weight counted once.

    `values[param]` is shaped like the parameter; differentiable (group lasso uses it).
    A weight at the crossing of a unit's row and its own column (weight_hh[g*H + k, k])
    belongs to both slices and is subtracted once.
    """
    ref = next(iter(values.values()))
    total = torch.zeros(group.size, dtype=ref.dtype, device=ref.device)
    by_param: dict[str, dict[int, Tensor]] = {}
    for s in group.slices:
        v = values[s.param]
        v = v * v if square else v.abs()
        per_pos = v.movedim(s.dim, 0).reshape(v.shape[s.dim], -1).sum(1)  # (positions,)
        own = s.units >= 0
        total = total.index_add(0, s.units[own].to(ref.device), per_pos[own])
        by_param.setdefault(s.param, {})[s.dim] = s.units
    for param, dims in by_param.items():
        if 0 in dims and 1 in dims:  # rows and columns of the same group in one matrix
            r, c = dims[0].to(ref.device), dims[1].to(ref.device)
            i, j = torch.nonzero((r[:, None] == c[None, :]) & (r[:, None] >= 0), as_tuple=True)
            v = values[param]
            v = v * v if square else v.abs()
            total = total.index_add(0, r[i], -v[i, j])
    return total


def unit_scores(model: nn.Module, group: UnitGroup, scores: dict[str, Tensor] | None = None,
                l2: bool = False) -> Tensor:
    """(group.size,) float64 importance of each unit: L1 (sum) or L2 (norm) of its weights' scores.

    scores: {param name: per-weight score shaped like the parameter}; missing -> |W|.
    """
    params = dict(model.named_parameters())
    vals = {}
    for s in group.slices:
        p = params[s.param]
        sc = (scores or {}).get(s.param)
        sc = p.detach().abs() if sc is None else sc.detach()
        if tuple(sc.shape) != tuple(p.shape):
            raise ValueError(f"score for {s.param} has shape {tuple(sc.shape)}, the parameter {tuple(p.shape)}")
        vals[s.param] = torch.nan_to_num(sc.double().cpu(), nan=0.0)
    total = unit_sums(group, vals, square=l2)
    return total.clamp_min(0).sqrt() if l2 else total


def _round_half_up(x: float) -> int:
    return math.floor(x + 0.5)


def round_count(keep: float, size: int, multiple: int) -> int:
    """Kept count: `keep` rounded (halves up) to a multiple, within [min(multiple, size), size]."""
    k = _round_half_up(keep / multiple) * multiple
    return min(size, max(k, min(multiple, size), 1))


def top_units(score: Tensor, count: int) -> Tensor:
    """Indices (sorted) of the `count` highest scores; ties keep the lower index."""
    order = torch.sort(-score, stable=True).indices
    return torch.sort(order[:count]).values


def layer_counts(groups: list[UnitGroup], ratios: dict[str, float], multiple: int) -> dict[str, int]:
    # no tie averaging here: different explicit ratios on one torch module are an error (apply_cuts_)
    return {g.name: round_count(g.size * (1 - ratios[g.name]), g.size, multiple) for g in groups}


def global_counts(groups: list[UnitGroup], scores: dict[str, Tensor], ratio: float, multiple: int,
                  normalize: bool) -> dict[str, int]:
    """Remove the round(ratio * total) lowest-scored units over all groups, then round per group."""
    pooled = []
    for g in groups:
        s = scores[g.name]
        s = s / s.mean().clamp_min(1e-30) if normalize else s
        pooled += [(float(v), g.name) for v in s]
    n_remove = _round_half_up(ratio * len(pooled))
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
