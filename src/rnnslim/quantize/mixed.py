"""Per-layer mixed precision under a size budget.

    plan = plan_mixed_precision(model, task, MixedPrecision(bits=(8, 4, 2), budget_ratio=0.15))
    print(plan)                     # one row per layer: chosen bits, bytes, loss increase
    apply_plan_(model, plan)

Sensitivity: the calibration loss (a few consecutive training batches, state carried
for stateful tasks) with only one layer quantized at one candidate width, minus the
float model's loss. Choice: the per-layer widths that minimise the sum of those loss
increases with the model's stored tensor bytes within the budget, an exact
multiple-choice knapsack over bytes rounded up to 1/4000 of the budget (so the budget
holds exactly). Layer interactions are ignored; the stage re-measures the result.

Candidate widths: 2..8 integer (group-wise, per-channel if the group does not divide
the layer), 16 = fp16 storage, 32 = leave the layer float.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from rnnslim.io.modules import set_submodule
from rnnslim.quantize.api import QuantizeResult, apply_format_, quantize_layer
from rnnslim.quantize.formats import BaseFormat, FloatDtype, FloatFormat, int_format
from rnnslim.quantize.primitives import ClipMethod
from rnnslim.quantize.targets import (
    DEFAULT_TARGETS,
    LayerFilter,
    Target,
    find_targets,
    target_of,
)
from rnnslim.verbs import Family, register

BUCKETS = 4000


class MixedPrecision(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    bits: tuple[int, ...] = Field(default=(8, 4, 2), min_length=1, description="candidate widths: 2..8, 16, 32")
    group_size: int | None = Field(default=64, ge=1)
    symmetric: bool = True
    clip: ClipMethod = ClipMethod.MSE
    budget_bytes: int | None = Field(default=None, ge=1, description="stored tensor bytes of the whole model")
    budget_ratio: float | None = Field(default=None, gt=0, le=1, description="budget as a fraction of fp32 bytes")
    calib_batches: int = Field(default=4, ge=1)
    batch_size: int = Field(default=16, ge=1)
    seq_len: int = Field(default=64, ge=1)
    targets: tuple[Target, ...] = DEFAULT_TARGETS

    @model_validator(mode="after")
    def _check(self) -> MixedPrecision:
        if (self.budget_bytes is None) == (self.budget_ratio is None):
            raise ValueError("give exactly one of budget_bytes and budget_ratio")
        bad = [b for b in self.bits if not (2 <= b <= 8 or b in (16, 32))]
        if bad:
            raise ValueError(f"candidate bits {bad} are not supported; use 2..8 (integer), 16 (fp16) or 32 (float)")
        return self


@dataclass
class PlanRow:
    path: str
    target: str
    bits: int
    fmt: BaseFormat | None  # None: stays float
    bytes: int
    float_bytes: int
    loss_increase: float
    sensitivity: dict[int, float] = field(default_factory=dict)  # bits -> loss increase alone
    note: str = ""

    @property
    def format_name(self) -> str:
        return "float" if self.fmt is None else self.fmt.describe()


@dataclass
class MixedPrecisionPlan:
    rows: list[PlanRow]
    budget_bytes: int
    fixed_bytes: int  # tensors outside the candidate layers (kept as they are)
    base_loss: float

    @property
    def total_bytes(self) -> int:
        return self.fixed_bytes + sum(r.bytes for r in self.rows)

    @property
    def float_bytes(self) -> int:
        return self.fixed_bytes + sum(r.float_bytes for r in self.rows)

    @property
    def predicted_loss(self) -> float:
        return self.base_loss + sum(r.loss_increase for r in self.rows)

    def formats(self) -> dict[str, BaseFormat]:
        return {r.path: r.fmt for r in self.rows if r.fmt is not None}

    def as_dict(self) -> dict:
        return {"budget_bytes": self.budget_bytes, "total_bytes": self.total_bytes, "float_bytes": self.float_bytes,
                "fixed_bytes": self.fixed_bytes, "base_loss": self.base_loss, "predicted_loss": self.predicted_loss,
                "layers": [{"path": r.path, "target": r.target, "bits": r.bits, "format": r.format_name,
                            "bytes": r.bytes, "float_bytes": r.float_bytes, "loss_increase": r.loss_increase,
                            "sensitivity": {str(k): v for k, v in r.sensitivity.items()}, "note": r.note}
                           for r in self.rows]}

    def __str__(self) -> str:
        bits = sorted({b for r in self.rows for b in r.sensitivity}, reverse=True)
        head = ["layer", "choice", "bytes", "fp32 bytes"] + [f"dloss@{b}" for b in bits]
        lines = [" | ".join(head), " | ".join("---" for _ in head)]
        for r in self.rows:
            sens = [f"{r.sensitivity[b]:+.4f}" if b in r.sensitivity else "" for b in bits]
            lines.append(" | ".join([r.path, r.format_name + (f" ({r.note})" if r.note else ""), f"{r.bytes:,}",
                                     f"{r.float_bytes:,}"] + sens))
        lines.append(f"total {self.total_bytes:,} bytes of budget {self.budget_bytes:,} "
                     f"({self.total_bytes / self.float_bytes:.1%} of fp32 {self.float_bytes:,}); "
                     f"base loss {self.base_loss:.4f}, predicted {self.predicted_loss:.4f}")
        return "\n".join(lines)


def _tensor_bytes(mod: nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in mod.state_dict().values())


def _unique_bytes(model: nn.Module, skip_prefixes: list[str]) -> int:
    seen, total = set(), 0
    for name, t in model.state_dict().items():
        if any(name.startswith(p + ".") for p in skip_prefixes):
            continue
        key = (t.data_ptr(), t.numel(), t.dtype)
        if t.numel() and key in seen:
            continue
        seen.add(key)
        total += t.numel() * t.element_size()
    return total


@torch.no_grad()
def calibration_loss(model: nn.Module, task, batches) -> float:
    """Mean task loss over `batches` in eval mode (state carried for stateful tasks)."""
    was = model.training
    model.eval()
    state, total = None, 0.0
    device = next(iter(model.state_dict().values())).device
    for b in batches:
        b = b.to(device)
        out, new = model(b.inputs, state if task.stateful else None)
        total += float(task.loss(out, b))
        state = new if task.stateful else None
    model.train(was)
    return total / len(batches)


def _candidate(cfg: MixedPrecision, bits: int, mod: nn.Module) -> tuple[BaseFormat | None, str]:
    """The format for `bits` on this layer (None = stay float) and a note on any fallback."""
    if bits == 32:
        return None, ""
    if bits == 16:
        return FloatFormat(dtype=FloatDtype.FP16), ""
    cols = [math.prod(p.shape[1:]) for n, p in mod.named_parameters() if n.startswith("weight")]
    if cfg.group_size is not None and any(c % cfg.group_size for c in cols):
        return (int_format(bits, None, symmetric=cfg.symmetric, clip=cfg.clip),
                f"group {cfg.group_size} does not divide {sorted(set(cols))} columns: per-channel")
    return int_format(bits, cfg.group_size, symmetric=cfg.symmetric, clip=cfg.clip), ""


def _knapsack(costs: list[list[int]], losses: list[list[float]], capacity: int) -> list[int] | None:
    """Multiple-choice knapsack: one option per item, sum cost <= capacity, min sum loss."""
    INF = float("inf")
    dp = np.full(capacity + 1, INF)
    dp[0] = 0.0
    choice = []
    for cs, ls in zip(costs, losses):
        new = np.full(capacity + 1, INF)
        arg = np.full(capacity + 1, -1, dtype=np.int64)
        for j, (c, l) in enumerate(zip(cs, ls)):
            if c > capacity:
                continue
            cand = np.full(capacity + 1, INF)
            cand[c:] = dp[: capacity + 1 - c] + l
            better = cand < new
            new[better], arg[better] = cand[better], j
        dp = new
        choice.append(arg)
    if not np.isfinite(dp).any():
        return None
    b = int(np.argmin(dp))
    picks = []
    for i in range(len(costs) - 1, -1, -1):
        j = int(choice[i][b])
        picks.append(j)
        b -= costs[i][j]
    return picks[::-1]


def plan_mixed_precision(model: nn.Module, task, cfg: MixedPrecision, filter: LayerFilter | None = None,
                         batches=None) -> MixedPrecisionPlan:
    """Measure per-layer sensitivity and choose bits per layer under the budget (model unchanged)."""
    units = find_targets(model, cfg.targets, filter)
    if not units:
        raise ValueError("mixed precision: the model has no float layers among the targets")
    batches = batches or task.calibration_batches(cfg.calib_batches, cfg.batch_size, cfg.seq_len)
    base = calibration_loss(model, task, batches)
    fixed = _unique_bytes(model, [p for p, _ in units])
    rows_opts = []  # per unit: list of (bits, fmt, bytes, dloss, note)
    for path, mod in units:
        opts = []
        for bits in sorted(set(cfg.bits), reverse=True):
            fmt, note = _candidate(cfg, bits, mod)
            if fmt is None:
                opts.append((bits, None, _tensor_bytes(mod), 0.0, note))
                continue
            q = quantize_layer(mod, fmt)
            set_submodule(model, path, q)
            try:
                dloss = calibration_loss(model, task, batches) - base
            finally:
                set_submodule(model, path, mod)
            opts.append((bits, fmt, q.stored_bytes(), dloss, note))
        rows_opts.append((path, mod, opts))
    float_total = fixed + sum(_tensor_bytes(m) for _, m, _ in rows_opts)
    budget = cfg.budget_bytes if cfg.budget_bytes is not None else int(cfg.budget_ratio * float_total)
    avail = budget - fixed
    smallest = fixed + sum(min(o[2] for o in opts) for _, _, opts in rows_opts)
    if avail <= 0 or smallest > budget:
        raise ValueError(f"budget {budget:,} bytes is below the smallest reachable size {smallest:,} bytes with "
                         f"candidate bits {list(cfg.bits)} (fp32 model: {float_total:,} bytes)")
    unit = avail / BUCKETS
    costs = [[math.ceil(o[2] / unit) for o in opts] for _, _, opts in rows_opts]
    losses = [[o[3] for o in opts] for _, _, opts in rows_opts]
    picks = _knapsack(costs, losses, BUCKETS)
    if picks is None:  # rounding up made the tightest choice infeasible: take the smallest everywhere
        picks = [min(range(len(opts)), key=lambda j: opts[j][2]) for _, _, opts in rows_opts]
    rows = []
    for (path, mod, opts), j in zip(rows_opts, picks):
        bits, fmt, nbytes, dloss, note = opts[j]
        rows.append(PlanRow(path, target_of(path, mod).value, bits, fmt, nbytes, _tensor_bytes(mod), dloss,
                            {o[0]: o[3] for o in opts}, note))
    return MixedPrecisionPlan(rows, budget, fixed, base)


def apply_plan_(model: nn.Module, plan: MixedPrecisionPlan) -> list:
    """Quantize each layer of the plan with its chosen format (float choices stay)."""
    formats = plan.formats()
    if not formats:
        return []
    return apply_format_(model, None, targets=tuple(Target), formats=formats)


@dataclass
class MixedPrecisionResult(QuantizeResult):
    plan: MixedPrecisionPlan | None = None  # the bits chosen per layer and why (measured sensitivity)


@register(Family.QUANTIZE, MixedPrecision)
def _quantize_mixed(model: nn.Module, cfg: MixedPrecision, calibration, filter: LayerFilter | None = None
                    ) -> MixedPrecisionResult:
    """rnnslim.quantize_(model, MixedPrecision(...), calibration=task): plan, then apply."""
    if not hasattr(calibration, "loss"):
        raise ValueError("MixedPrecision measures each layer's effect on the loss: give calibration=a Task "
                         f"(e.g. rnnslim.tasks.charlm), not {type(calibration).__name__}")
    plan = plan_mixed_precision(model, calibration, cfg, filter)
    return MixedPrecisionResult(layers=apply_plan_(model, plan), plan=plan)
