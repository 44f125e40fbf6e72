"""Per-layer pruning sensitivity: the task metric vs sparsity, one tensor (or layer) at a time.

For each group of prunable tensors, the group alone is pruned (layer-wise, no fine-tuning)
to each sparsity, the model is evaluated, and the weights are restored. Importance scores
are computed once on the unpruned model. The table shows which layers tolerate pruning,
which is what a per-layer sparsity budget is chosen from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import torch
from torch import nn

from rnnslim.prune.importance import Criterion, score_model
from rnnslim.prune.masks import apply_masks_
from rnnslim.prune.targets import (
    ALL_KINDS,
    PrunableTensor,
    TargetKind,
    prunable_tensors,
)
from rnnslim.prune.unstructured import layer_masks
from rnnslim.tasks.base import Task


class Grouping(str, Enum):
    TENSOR = "tensor"  # every weight tensor on its own
    LAYER = "layer"  # all tensors of one recurrent layer together; embedding / output alone


@dataclass
class SensitivityResult:
    metric: str
    baseline: float
    sparsities: list[float]
    table: dict[str, dict[float, float]]  # group -> sparsity -> metric
    sizes: dict[str, int]  # group -> number of weights
    criterion: str = "magnitude"
    split: str = "valid"
    higher_is_better: bool = False
    meta: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"metric": self.metric, "baseline": self.baseline, "sparsities": self.sparsities,
                "criterion": self.criterion, "split": self.split, "higher_is_better": self.higher_is_better,
                "sizes": self.sizes, "table": {g: {str(s): v for s, v in row.items()} for g, row in self.table.items()},
                **self.meta}

    def to_markdown(self) -> str:
        head = "| tensor | weights | " + " | ".join(f"{s:.0%}" for s in self.sparsities) + " |"
        lines = [f"{self.metric} on {self.split} after pruning one group ({self.criterion}, no fine-tuning); "
                 f"unpruned: {self.baseline:.4f}", "", head, "|---|---:|" + "---:|" * len(self.sparsities)]
        for g, row in self.table.items():
            cells = " | ".join(f"{row[s]:.4f} ({row[s] - self.baseline:+.4f})" for s in self.sparsities)
            lines.append(f"| {g} | {self.sizes[g]:,} | {cells} |")
        return "\n".join(lines)

    def plot(self, path: str | Path) -> Path:
        """Metric vs sparsity, one line per group, unpruned as a dashed line (PNG/SVG by suffix)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4.5))
        for g, row in self.table.items():
            ax.plot(self.sparsities, [row[s] for s in self.sparsities], marker="o", label=g)
        ax.axhline(self.baseline, color="gray", linestyle="--", label="unpruned")
        ax.set_xlabel("sparsity of the group")
        ax.set_ylabel(f"{self.metric} ({self.split})")
        ax.set_title(f"pruning sensitivity ({self.criterion}, no fine-tuning)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return path


def _groups(items: list[PrunableTensor], grouping: Grouping) -> dict[str, list[str]]:
    if grouping is Grouping.TENSOR:
        return {t.name: [t.name] for t in items}
    out: dict[str, list[str]] = {}
    for t in items:
        key = f"layer {t.layer}" if t.layer is not None else t.name
        out.setdefault(key, []).append(t.name)
    return out


def sensitivity(model: nn.Module, task: Task, sparsities: Sequence[float] = (0.3, 0.5, 0.7, 0.8, 0.9, 0.95),
                criterion: Criterion | str = Criterion.MAGNITUDE, split: str = "valid", max_steps: int | None = None,
                targets: Sequence[TargetKind] = ALL_KINDS, grouping: Grouping | str = Grouping.TENSOR,
                calibration_batches: int = 8, plot_path: str | Path | None = None) -> SensitivityResult:
    """Metric of `task` on `split` (capped at max_steps) with each group pruned alone; weights restored."""
    criterion, grouping = Criterion(criterion), Grouping(grouping)
    sparsities = sorted(float(s) for s in sparsities)
    if any(not 0.0 <= s < 1.0 for s in sparsities):
        raise ValueError(f"sparsities must be in [0, 1), got {sparsities}")
    items = prunable_tensors(model, targets)
    if not items:
        raise ValueError("the model has no prunable tensors of the requested kinds")
    scores = score_model(model, criterion, task if criterion.needs_data else None, [t.name for t in items],
                         n_batches=calibration_batches)
    metric = task.primary_metric
    baseline = float(task.evaluate(model, split, max_steps=max_steps)[metric])
    table: dict[str, dict[float, float]] = {}
    sizes: dict[str, int] = {}
    for group, names in _groups(items, grouping).items():
        saved = {n: model.get_parameter(n).detach().clone() for n in names}
        sizes[group] = sum(t.numel() for t in saved.values())
        row = {}
        try:
            for s in sparsities:
                apply_masks_(model, layer_masks({n: scores[n] for n in names}, s))
                row[s] = float(task.evaluate(model, split, max_steps=max_steps)[metric])
                with torch.no_grad():
                    for n, t in saved.items():
                        model.get_parameter(n).copy_(t)  # in place, so nn.LSTM flat weights stay valid
        finally:
            with torch.no_grad():
                for n, t in saved.items():
                    model.get_parameter(n).copy_(t)
        table[group] = row
    result = SensitivityResult(metric, baseline, sparsities, table, sizes, criterion.value, split,
                               task.higher_is_better,
                               {"max_steps": max_steps, "grouping": grouping.value})
    if plot_path is not None:
        result.meta["plot"] = str(result.plot(plot_path))
    return result
