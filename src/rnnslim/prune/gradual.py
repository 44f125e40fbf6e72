"""Gradual pruning: the AGP cubic schedule inside fine-tuning (rnnslim.train.train).

    result = prune_gradual_(model, task, GradualPruning(
        schedule=AGPSchedule(final_sparsity=0.9, end_step=600, frequency=50),
        train=TrainConfig(max_steps=1000, lr=1e-3)))

At each schedule point the masks are recomputed for the scheduled sparsity (weights pruned
before stay pruned) and applied; after every optimizer step the masks are re-applied and
pruned gradients zeroed (masks.MaskHook). With start_step 0 the first cut happens before
the first step. A run resumed from `checkpoint_dir` continues from the zeros of the
checkpoint (the pruning points before it are not repeated).

Which weights come back: the best validation candidate among the evaluations from the
schedule's end_step on (the model is at its final sparsity there; the final weights are
always a candidate), never an earlier, denser checkpoint or the unpruned input
(TrainConfig.select_from_step = end_step). `hooks` adds distillation or more after_step hooks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from rnnslim.io.format import load_model
from rnnslim.prune.common import score_targets
from rnnslim.prune.importance import Calibration, Criterion, as_calibration
from rnnslim.prune.masks import MaskHook, Masks, apply_masks_, mask_of, sparsity_report
from rnnslim.prune.patterns import BlockPruning, block_masks
from rnnslim.prune.schedules import AGPSchedule
from rnnslim.prune.targets import RECURRENT_KINDS, TargetKind, target_names
from rnnslim.prune.unstructured import Scope, select_masks
from rnnslim.results import EditResult
from rnnslim.tasks.base import Task
from rnnslim.train import TrainConfig, TrainHooks, TrainResult, load_best, total_steps, train
from rnnslim.verbs import Family, register


class GradualPruning(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    schedule: AGPSchedule
    train: TrainConfig
    criterion: Criterion = Criterion.MAGNITUDE
    scope: Scope = Scope.LAYER
    targets: tuple[TargetKind, ...] = Field(default=RECURRENT_KINDS, min_length=1)
    layers: tuple[int, ...] | None = None
    calibration_batches: int = Field(default=8, ge=1)
    block_rows: int | None = Field(default=None, ge=1, description="prune whole tiles (see patterns.py) when set")
    block_cols: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _check(self) -> GradualPruning:
        if self.train.max_steps is not None and self.train.max_steps < self.schedule.end_step:
            raise ValueError(f"training stops at step {self.train.max_steps}, before the schedule reaches its final "
                             f"sparsity at step {self.schedule.end_step}")
        return self

    @property
    def blocks(self) -> bool:
        return self.block_rows is not None or self.block_cols is not None


class AGPHook:
    """after_step hook: prune to the scheduled sparsity at schedule points, keep masks holding."""

    def __init__(self, cfg: GradualPruning, calibration: Calibration | None) -> None:
        self.cfg, self.calibration = cfg, calibration
        self.masks: Masks | None = None
        self.keeper = MaskHook({})
        self.points: list[dict] = []

    def adopt(self, model: nn.Module, masks: Masks) -> None:
        """Continue from existing masks (a resumed run) without pruning."""
        self.masks = masks
        self.keeper.update(masks)
        self.keeper.attach(model)

    def prune_to(self, model: nn.Module, sparsity: float, step: int) -> None:
        cfg = self.cfg
        _, scores = score_targets(model, cfg.criterion, cfg.targets, cfg.layers, self.calibration,
                                  cfg.calibration_batches)
        if cfg.blocks:
            bcfg = BlockPruning(sparsity=sparsity, block_rows=cfg.block_rows, block_cols=cfg.block_cols,
                                scope=cfg.scope)
            masks = block_masks(scores, bcfg)
            if self.masks is not None:  # never regrow
                masks = {n: m & self.masks[n] for n, m in masks.items()}
        else:
            masks = select_masks(scores, sparsity, cfg.scope, self.masks)
        self.masks = masks
        self.keeper.update(masks)
        self.keeper.attach(model)  # pruned gradients are zero from the next backward on
        apply_masks_(model, masks)
        kept = sum(int(m.sum()) for m in masks.values())
        total = sum(m.numel() for m in masks.values())
        self.points.append({"step": step, "scheduled": sparsity, "achieved": 1.0 - kept / total})

    def __call__(self, model: nn.Module, step: int) -> None:
        if self.cfg.schedule.is_prune_step(step):
            self.prune_to(model, self.cfg.schedule.sparsity_at(step), step)
        if self.masks is not None:
            self.keeper(model, step)


@dataclass
class GradualResult(EditResult):
    masks: Masks
    report: dict
    train: TrainResult


def _with_agp(hook: AGPHook, extra: TrainHooks | None) -> TrainHooks:
    """The AGP hook first (prune, then keep masks), then the caller's hooks."""
    extra = extra or TrainHooks()
    return TrainHooks(after_step=[hook, *extra.after_step], extra_loss=list(extra.extra_loss),
                      replace_loss=extra.replace_loss)


def prune_gradual_(model: nn.Module, task: Task, cfg: GradualPruning, checkpoint_dir: str | Path | None = None,
                   progress: bool = False, hooks: TrainHooks | None = None) -> GradualResult:
    """AGP pruning with fine-tuning on `task`, in place; returns masks and a per-tensor report."""
    total = total_steps(task, cfg.train)
    if total < cfg.schedule.end_step:
        raise ValueError(f"training runs {total} steps (epochs x batches per epoch / max_steps), fewer than the "
                         f"schedule's end_step {cfg.schedule.end_step}")
    calibration = as_calibration(task, cfg.calibration_batches) if cfg.criterion.needs_data else None
    hook = AGPHook(cfg, calibration)
    ckpt = Path(checkpoint_dir) if checkpoint_dir else None
    if ckpt and (ckpt / "trainer_state.pt").exists() and (ckpt / "last").exists():
        # train() will resume from this checkpoint: continue from the zeros it holds
        saved = load_model(ckpt / "last")
        hook.adopt(model, {n: mask_of(saved.get_parameter(n)) for n in target_names(model, cfg.targets, cfg.layers)})
    elif cfg.schedule.start_step == 0:
        hook.prune_to(model, cfg.schedule.sparsity_at(0), 0)
    tcfg = cfg.train.model_copy(update={"select_from_step": max(cfg.train.select_from_step, cfg.schedule.end_step)})
    try:
        result = train(model, task, tcfg, checkpoint_dir, hooks=_with_agp(hook, hooks), progress=progress,
                       desc="prune (gradual)")
    finally:
        hook.keeper.remove()
    masks = hook.masks or {}
    load_best(model, result)  # saved at final sparsity (step >= end_step); masks re-applied below
    apply_masks_(model, masks)
    method = {"method": "agp", "criterion": cfg.criterion.value, "scope": cfg.scope.value,
              "target_sparsity": cfg.schedule.final_sparsity, "targets": [t.value for t in cfg.targets],
              "schedule": cfg.schedule.model_dump(), "points": hook.points,
              "block": [cfg.block_rows, cfg.block_cols] if cfg.blocks else None}
    report = {"method": method, **sparsity_report(model, list(masks)),
              "finetune": result.summary()}
    return GradualResult(masks, report, result)


@register(Family.PRUNE, GradualPruning)
def _prune_gradual(model: nn.Module, cfg: GradualPruning, task: Task, checkpoint_dir: str | Path | None = None,
                   progress: bool = False, hooks: TrainHooks | None = None) -> GradualResult:
    """rnnslim.prune_(model, GradualPruning(...), task=task): prune_gradual_ with the config first."""
    return prune_gradual_(model, task, cfg, checkpoint_dir, progress, hooks)
