"""Pipeline stages for mask-based pruning (kinds: prune, prune_nm, prune_block, prune_sensitivity).

Recipe examples (YAML):

    - kind: prune                 # one-shot magnitude, 90 % of the recurrent weights
      sparsity: 0.9
    - kind: prune                 # gradual AGP with fine-tuning
      sparsity: 0.9
      schedule: agp
      finetune_steps: 2000
      frequency: 50
      criterion: taylor
      targets: [input, recurrent, output]
    - kind: prune_nm              # 2:4 along the input dimension
      n: 2
      m: 4
    - kind: prune_block           # 4 x 4 tiles, 80 %
      sparsity: 0.8
    - kind: prune_sensitivity     # no change to the model; a table + plot in the report
      sparsities: [0.5, 0.7, 0.9]

The fine-tuning fields (lr, batch_size, seq_len, warm-up, evaluation, dropout,
distillation) are rnnslim.train.finetune.FinetuneFields, shared with the `finetune` stage;
`finetune_steps` is the number of steps (0: none after a one-shot cut). After a one-shot
cut the best validation candidate comes back (the freshly pruned model included), masks
re-applied; AGP keeps the best candidate from its end_step on (prune/gradual.py).

Every pruning stage records per-tensor sparsity and the method in ctx.record, and marks
the pruned tensors for sparse storage (model.tensor_encodings), so the saved artifact is
smaller and masks_from_model finds the masks again for a later fine-tuning stage.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Literal

from pydantic import Field, model_validator
from torch import nn

from rnnslim.io.sparse_encoding import SparseFormat
from rnnslim.pipeline.finetuning import masked_finetune
from rnnslim.pipeline.stage import StageConfig, StageContext, register_stage
from rnnslim.prune.common import PruneResult
from rnnslim.prune.gradual import GradualPruning, prune_gradual_
from rnnslim.prune.importance import Criterion
from rnnslim.prune.masks import (
    Masks,
    apply_masks_,
    mark_sparse_,
    sparsity_report,
)
from rnnslim.prune.patterns import BlockPruning, NMPruning, prune_block_, prune_nm_
from rnnslim.prune.schedules import AGPSchedule
from rnnslim.prune.sensitivity import Grouping, sensitivity
from rnnslim.prune.targets import ALL_KINDS, RECURRENT_KINDS, TargetKind
from rnnslim.prune.unstructured import Scope, UnstructuredPruning, prune_unstructured_
from rnnslim.train.finetune import FinetuneFields, finetune_record, prepare_
from rnnslim.transform.projection import projection_hook


class PruneSchedule(str, Enum):
    ONE_SHOT = "one_shot"
    AGP = "agp"


class _MaskedPruneStage(StageConfig, FinetuneFields):
    """Fields shared by the mask-based pruning stages; fine-tuning fields from FinetuneFields."""

    criterion: Criterion = Criterion.MAGNITUDE
    targets: tuple[TargetKind, ...] = Field(default=RECURRENT_KINDS, min_length=1)
    layers: tuple[int, ...] | None = None
    calibration_batches: int = Field(default=8, ge=1, le=10_000)
    storage: SparseFormat = SparseFormat.AUTO
    finetune_steps: int = Field(default=0, ge=0, le=10**7, description="masked fine-tuning steps (after a one-shot cut; "
                                                             "during an AGP schedule)")

    def trains_model(self) -> bool:
        return self.finetune_steps > 0


class _ScheduledPruneStage(_MaskedPruneStage):
    sparsity: float = Field(ge=0.0, lt=1.0)
    scope: Scope = Scope.LAYER
    schedule: PruneSchedule = PruneSchedule.ONE_SHOT
    initial_sparsity: float = Field(default=0.0, ge=0.0, lt=1.0)
    start_step: int = Field(default=0, ge=0)
    end_step: int | None = Field(default=None, ge=1, description="default: 75 % of finetune_steps")
    frequency: int = Field(default=10, ge=1)

    @model_validator(mode="after")
    def _check_schedule(self):
        if self.schedule is PruneSchedule.AGP:
            if self.finetune_steps < 1:
                raise ValueError("schedule 'agp' prunes during fine-tuning: set finetune_steps > 0")
            self.agp()  # validates start/end/sparsities
        return self

    def agp(self) -> AGPSchedule:
        end = self.end_step or max(self.start_step + 1, int(0.75 * self.finetune_steps))
        return AGPSchedule(final_sparsity=self.sparsity, initial_sparsity=self.initial_sparsity,
                           start_step=self.start_step, end_step=end, frequency=self.frequency)

    def gradual(self, ctx: StageContext, block_rows=None, block_cols=None) -> GradualPruning:
        train = self.train_config(self.finetune_steps, ctx.seed, ctx.device)
        return GradualPruning(schedule=self.agp(), train=train, criterion=self.criterion,
                              scope=self.scope, targets=self.targets, layers=self.layers,
                              calibration_batches=self.calibration_batches, block_rows=block_rows,
                              block_cols=block_cols)


class PruneStage(_ScheduledPruneStage):
    """Unstructured pruning, one-shot or AGP."""

    kind: Literal["prune"] = "prune"


class NMPruneStage(_MaskedPruneStage):
    """N:M semi-structured pruning (n of every m weights kept), optional fine-tuning with the masks."""

    kind: Literal["prune_nm"] = "prune_nm"
    n: int = Field(default=2, ge=1, le=64)
    m: int = Field(default=4, ge=2, le=64)


class BlockPruneStage(_ScheduledPruneStage):
    """Block pruning (whole r x c blocks), one-shot or AGP, optional fine-tuning with the masks."""

    kind: Literal["prune_block"] = "prune_block"
    block_rows: int | None = Field(default=4, ge=1)
    block_cols: int | None = Field(default=4, ge=1)


class SensitivityStage(StageConfig):
    """Measure only: loss of each layer pruned alone at each sparsity (table and plot); the model is unchanged."""

    kind: Literal["prune_sensitivity"] = "prune_sensitivity"
    sparsities: tuple[float, ...] = Field(default=(0.3, 0.5, 0.7, 0.8, 0.9, 0.95), min_length=1)
    criterion: Criterion = Criterion.MAGNITUDE
    targets: tuple[TargetKind, ...] = Field(default=ALL_KINDS, min_length=1)
    grouping: Grouping = Grouping.TENSOR
    split: str = "valid"
    max_steps: int | None = Field(default=5000, ge=1, le=10**7)
    calibration_batches: int = Field(default=8, ge=1, le=10_000)
    plot: bool = True


def _calibration(cfg: _MaskedPruneStage, ctx: StageContext):
    return ctx.task if cfg.criterion.needs_data else None


def _masked_finetune(model: nn.Module, masks: Masks, cfg: _MaskedPruneStage, ctx: StageContext) -> dict:
    """Fine-tune with the masks holding; the best candidate (the pruned input included) comes back."""
    # transform-coded tensors (never pruned) stay in their subspace
    record = masked_finetune(model, cfg, cfg.finetune_steps, ctx, "finetune", masks)
    apply_masks_(model, masks)  # the candidates were saved masked; this keeps the zeros exact
    return record


def _finish(model: nn.Module, masks: Masks, report: dict, cfg: _MaskedPruneStage, ctx: StageContext,
            finetune: bool) -> nn.Module:
    """Optional masked fine-tuning, sparse-storage marks, and the stage record."""
    report = dict(report)
    if finetune and cfg.finetune_steps:
        report["finetune"] = _masked_finetune(model, masks, cfg, ctx)
        report.update(sparsity_report(model, list(masks)))
    report["storage"] = mark_sparse_(model, list(masks), cfg.storage)
    ctx.record.update(report)
    return model


def _run_scheduled(model: nn.Module, cfg: _ScheduledPruneStage, ctx: StageContext,
                   one_shot: Callable[[], PruneResult], blocks: tuple = (None, None)) -> nn.Module:
    if cfg.schedule is PruneSchedule.AGP:
        gradual, ckpt = cfg.gradual(ctx, *blocks), ctx.work_dir / "agp"
        resumed = (ckpt / "trainer_state.pt").exists()
        hooks = prepare_(model, cfg, ctx)  # dropout, distillation
        projection = projection_hook(model)  # transform-coded tensors (never pruned) stay in their subspace
        if projection:
            hooks.after_step.append(projection)
        res = prune_gradual_(model, ctx.task, gradual, ckpt, progress=ctx.progress, hooks=hooks)
        if projection:
            projection.finalize(model)
        report = {**res.report, "finetune": {**finetune_record(res.train, gradual.train, cfg, resumed),
                                             "projected_tensors": len(projection or [])}}
        return _finish(model, res.masks, report, cfg, ctx, finetune=False)
    result = one_shot()
    return _finish(model, result.masks, result.report, cfg, ctx, finetune=True)


@register_stage(PruneStage)
def run_prune(model: nn.Module, cfg: PruneStage, ctx: StageContext) -> nn.Module:
    model.to(ctx.device)
    pcfg = UnstructuredPruning(sparsity=cfg.sparsity, criterion=cfg.criterion, scope=cfg.scope, targets=cfg.targets,
                               layers=cfg.layers, calibration_batches=cfg.calibration_batches)
    return _run_scheduled(model, cfg, ctx, lambda: prune_unstructured_(model, pcfg, _calibration(cfg, ctx)))


@register_stage(BlockPruneStage)
def run_prune_block(model: nn.Module, cfg: BlockPruneStage, ctx: StageContext) -> nn.Module:
    model.to(ctx.device)
    bcfg = BlockPruning(sparsity=cfg.sparsity, block_rows=cfg.block_rows, block_cols=cfg.block_cols,
                        criterion=cfg.criterion, scope=cfg.scope, targets=cfg.targets, layers=cfg.layers,
                        calibration_batches=cfg.calibration_batches)
    return _run_scheduled(model, cfg, ctx, lambda: prune_block_(model, bcfg, _calibration(cfg, ctx)),
                          (cfg.block_rows, cfg.block_cols))


@register_stage(NMPruneStage)
def run_prune_nm(model: nn.Module, cfg: NMPruneStage, ctx: StageContext) -> nn.Module:
    ncfg = NMPruning(n=cfg.n, m=cfg.m, criterion=cfg.criterion, targets=cfg.targets, layers=cfg.layers,
                     calibration_batches=cfg.calibration_batches)
    model.to(ctx.device)
    result = prune_nm_(model, ncfg, _calibration(cfg, ctx))
    return _finish(model, result.masks, result.report, cfg, ctx, finetune=True)


@register_stage(SensitivityStage)
def run_sensitivity(model: nn.Module, cfg: SensitivityStage, ctx: StageContext) -> nn.Module:
    """Measure only: the model is returned unchanged."""
    model.to(ctx.device)
    result = sensitivity(model, ctx.task, cfg.sparsities, cfg.criterion, cfg.split, cfg.max_steps, cfg.targets,
                         cfg.grouping, cfg.calibration_batches,
                         plot_path=ctx.work_dir / "sensitivity.png" if cfg.plot else None)
    ctx.record.update({"sensitivity": result.to_dict(), "markdown": result.to_markdown()})
    return model
