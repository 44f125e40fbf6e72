"""Pipeline stages for structured pruning (kinds: prune_units, remove_layers, prune_vocab,
group_lasso). Each makes the model physically smaller; follow with a `finetune` stage to
recover accuracy.

    - kind: prune_units        # half the hidden units of every layer, sizes multiple of 8
      ratio: 0.5
      round_to: 8
    - kind: prune_units        # per layer, Taylor importance summed per unit
      per_layer: {0: 0.3, 1: 0.6}
      criterion: taylor
    - kind: prune_units        # half the hidden units and 3/4 of the embedding width (E)
      ratio: 0.5
      embed_ratio: 0.75
    - kind: remove_layers      # drop layer 1, fold its best affine fit into its consumer
      layers: [1]
      refit: lstsq
    - kind: prune_vocab        # drop tokens the task's text never uses
    - kind: group_lasso        # ISS: train with a group-lasso penalty, then remove dead units
      lam: 0.01               # trained with SGD (lr 0.1, momentum 0.9) unless set otherwise
      threshold: 0.05
      relative: true
      max_steps: 2000

ctx.record gets the per-layer sizes before/after and the parameter counts.
"""

from __future__ import annotations

import copy
from typing import ClassVar, Literal

from pydantic import Field
from torch import nn

from rnnslim.pipeline.model_fields import check_layer_keys
from rnnslim.pipeline.stage import StageConfig, StageContext, register_stage
from rnnslim.prune.group_lasso import GroupLasso, remove_dead_units_
from rnnslim.prune.structured import (
    StructuredPruning,
    UnitPruningFields,
    n_params,
    prune_units_,
)
from rnnslim.prune.structured.layers import LayerRefit, remove_layers_
from rnnslim.prune.structured.vocab import SPLITS, prune_vocab_
from rnnslim.train import LR_MAX, OptimizerKind, ScheduleKind, train
from rnnslim.train.finetune import FinetuneFields, finetune_record, prepare_


class PruneUnitsStage(StageConfig, UnitPruningFields):
    """Structured unit pruning: the fields of StructuredPruning, then (by default) a
    least-squares re-fit of every op so the cut model reproduces the model before the cut
    on calibration data (rnnslim.reconstruct.refit)."""

    kind: Literal["prune_units"] = "prune_units"
    changes_structure: ClassVar[bool] = True
    # the defaults until 2026-12 (now reduce l2, refit auto)
    hash_legacy_defaults: ClassVar[dict] = {"reduce": "l1", "refit": True}
    # auto (a recipe resolves it: resolved() below): re-fit unless a later stage trains the model.
    # The re-fit makes the one-shot model far better but the fine-tuned one worse (charlstm-512x2, 384
    # units, 200 steps: test 1.5192 with it, 1.4906 without; benchmarks/results/refit_then_finetune.json)
    refit: Literal["auto"] | bool = Field(default="auto", description="re-fit the cut layers and their consumers by "
                                          "least squares: true, false, or auto (unless a later stage trains)")
    refit_batches: int = Field(default=16, ge=1, description="calibration batches (16 x 64 tokens) for the re-fit")
    refit_iterations: int = Field(default=2, ge=1, description="re-fits of each recurrent layer (its h_{t-1} moves)")

    def resolved(self, later: list[StageConfig]) -> PruneUnitsStage:
        """`refit: auto` -> false when a later stage trains the model (StageConfig.trains_model), else true."""
        if self.refit != "auto":
            return self
        return self.model_copy(update={"refit": not any(s.trains_model() for s in later)})

    def check_against(self, model) -> None:
        check_layer_keys("layers", self.layers, model, from_end=True)
        check_layer_keys("per_layer", self.per_layer, model, from_end=True)


class RemoveLayersStage(StageConfig):
    """Remove whole recurrent layers (the next layer reads the previous one's output)."""

    kind: Literal["remove_layers"] = "remove_layers"
    changes_structure: ClassVar[bool] = True
    layers: list[int | str] = Field(min_length=1)
    refit: LayerRefit = LayerRefit.NONE
    ridge: float = Field(default=1e-4, ge=0)
    calibration_batches: int = Field(default=8, ge=1)

    def check_against(self, model) -> None:
        check_layer_keys("layers", self.layers, model, from_end=True)


class PruneVocabStage(StageConfig):
    """Drop vocabulary entries that never occur in the named data splits (embedding and decoder rows)."""

    kind: Literal["prune_vocab"] = "prune_vocab"
    changes_structure: ClassVar[bool] = True
    splits: tuple[Literal["train", "valid", "test"], ...] = Field(default=SPLITS, min_length=1)


class GroupLassoStage(StageConfig, FinetuneFields):
    """Group-lasso training (the shared fine-tuning fields), then removal of dead units.
    Documented exception to the fine-tuning defaults: SGD at lr 0.1, constant, as Wen et al."""

    kind: Literal["group_lasso"] = "group_lasso"
    changes_structure: ClassVar[bool] = True
    lam: float = Field(gt=0, description="penalty weight per unit group norm")
    threshold: float = Field(gt=0, description="units with a group norm below this are removed after training")
    relative: bool = Field(default=False, description="threshold relative to each layer's largest unit norm")
    round_to: int = Field(default=1, ge=1)
    layers: list[int | str] | None = None
    max_steps: int = Field(default=1000, ge=1, le=10**7)
    optimizer: OptimizerKind = Field(default=OptimizerKind.SGD,
                                     description="SGD: Adam's normalisation weakens the penalty")
    lr: float = Field(default=0.1, gt=0, le=LR_MAX)
    lr_schedule: ScheduleKind = ScheduleKind.CONSTANT

    def trains_model(self) -> bool:
        return True

    def check_against(self, model) -> None:
        check_layer_keys("layers", self.layers, model, from_end=True)


@register_stage(PruneUnitsStage)
def run_prune_units(model: nn.Module, cfg: PruneUnitsStage, ctx: StageContext) -> nn.Module:
    model.to(ctx.device)
    pruning = StructuredPruning(**cfg.model_dump(exclude={"kind", "refit", "refit_batches", "refit_iterations"}))
    # an unresolved "auto" (a stage run outside a recipe: nothing follows it) re-fits
    original = copy.deepcopy(model) if cfg.refit in (True, "auto") else None
    result = prune_units_(model, pruning, calibration=ctx.task if cfg.criterion.needs_data else None)
    ctx.record.update({"sizes": {g: list(v) for g, v in result.sizes.items()}, "skipped": result.skipped,
                       "params_before": result.params_before, "params_after": result.params_after})
    if original is not None and result.keeps:
        from rnnslim.reconstruct.refit import refit_after_cut_

        ctx.record["refit"] = refit_after_cut_(model, original, result, ctx.task, iterations=cfg.refit_iterations,
                                               n_batches=cfg.refit_batches, progress=ctx.progress)
    return model


@register_stage(RemoveLayersStage)
def run_remove_layers(model: nn.Module, cfg: RemoveLayersStage, ctx: StageContext) -> nn.Module:
    model.to(ctx.device)
    try:
        out = remove_layers_(model, cfg.layers, refit=cfg.refit, calibration=ctx.task, ridge=cfg.ridge,
                             n_batches=cfg.calibration_batches)
    except (KeyError, IndexError) as e:  # a layer index or key this model does not have
        n = getattr(getattr(model, "spec", None), "num_layers", None)
        have = f" (the model has {n} recurrent layers: 0..{n - 1})" if isinstance(n, int) else ""
        raise ValueError(f"stage remove_layers: field 'layers': {cfg.layers} names a layer this model does "
                         f"not have{have}: {e.args[0] if e.args else e}") from None
    ctx.record.update(out)
    return model


@register_stage(PruneVocabStage)
def run_prune_vocab(model: nn.Module, cfg: PruneVocabStage, ctx: StageContext) -> nn.Module:
    result = prune_vocab_(model, ctx.task, splits=cfg.splits)
    ctx.record.update({"vocab_before": result.size_before, "vocab_after": len(result.keep),
                       "params_before": result.params_before, "params_after": result.params_after})
    return model


@register_stage(GroupLassoStage)
def run_group_lasso(model: nn.Module, cfg: GroupLassoStage, ctx: StageContext) -> nn.Module:
    """Keeps the final weights (not the best checkpoint): the penalty's work is what counts."""
    lasso = GroupLasso(model, cfg.lam, layers=cfg.layers)
    before = float(lasso.penalty(model).detach())
    hooks = prepare_(model, cfg, ctx)
    hooks.extra_loss = [lasso]
    tcfg = cfg.train_config(cfg.max_steps, ctx.seed, ctx.device)
    res = train(model, ctx.task, tcfg, checkpoint_dir=ctx.work_dir / "group_lasso", hooks=hooks,
                progress=ctx.progress)
    after = float(lasso.penalty(model).detach())
    result = remove_dead_units_(model, cfg.threshold, relative=cfg.relative, round_to=cfg.round_to, layers=cfg.layers)
    ctx.record.update({**finetune_record(res, tcfg, cfg, resumed=False), "group_norm_sum_before": before,
                       "group_norm_sum_after": after, "sizes": {g: list(v) for g, v in result.sizes.items()},
                       "params_before": result.params_before, "params_after": n_params(model)})
    return model
