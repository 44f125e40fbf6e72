"""`distill_(student, Distillation(...), teacher=..., task=...)`: train a student in place to
match its teacher (the distillation family of rnnslim.verbs).

    student = make_student(teacher, StudentSpec(cell="gru", hidden_size=128))
    result = distill_(student, Distillation(alpha=0.5, train=TrainConfig(max_steps=1500)),
                      teacher=teacher, task=task)
    result.train.best_metric, result.bytes_after

The loss is alpha * KD + (1 - alpha) * task loss (rnnslim.train.distill.DistillLoss: the
teacher runs in eval mode without gradients, carrying its state for stateful tasks). The
student ends with the best validation candidate when keep_best (its input weights are the
first candidate, so it never ends worse on validation than it started), else the last
step's weights. All or nothing: a failed run leaves the student as it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from rnnslim.results import EditResult
from rnnslim.train import DistillLoss, TrainConfig, TrainHooks, TrainResult, load_best, train
from rnnslim.utils.atomic import atomic_edit
from rnnslim.verbs import Family, register


class Distillation(BaseModel):
    """How a student learns from its teacher (the teacher itself is passed to distill_)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    alpha: float = Field(default=0.5, ge=0, le=1, description="1: teacher only, 0: labels only")
    temperature: float = Field(default=2.0, gt=0)
    train: TrainConfig = TrainConfig()
    keep_best: bool = Field(default=True, description="end with the best validation candidate (load_best)")


@dataclass
class DistillResult(EditResult):
    train: TrainResult | None = None  # the training run (steps, validation history, best metric)


@register(Family.DISTILL, Distillation)
def _distill(model: nn.Module, cfg: Distillation, teacher: nn.Module, task, checkpoint_dir: str | Path | None = None,
             progress: bool = False) -> DistillResult:
    if teacher is model:
        raise ValueError("the teacher is the student itself: pass the uncompressed model as teacher= "
                         "(e.g. a copy taken before compressing)")
    with atomic_edit(model):
        loss = DistillLoss(teacher, cfg.alpha, cfg.temperature, stateful=task.stateful)
        run = train(model, task, cfg.train, checkpoint_dir, hooks=TrainHooks(replace_loss=loss), progress=progress,
                    desc="distill")
        if cfg.keep_best:
            load_best(model, run)
    return DistillResult(train=run)
