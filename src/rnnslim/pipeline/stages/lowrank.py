"""Pipeline stages for low-rank factorization (kinds: lowrank, to_lstmp; fields: rnnslim.lowrank).

    - kind: lowrank                 # W_ih (layer 0 folded into the embedding), W_hh via LSTMP
      targets: [input, recurrent]   #   and the head, ranks chosen for a parameter budget
      max_params: 1100000
    - kind: lowrank                 # 90 % of the squared singular values of each W_ih, per gate
      energy: 0.9
      scope: per_gate
    - kind: to_lstmp                # LSTM -> LSTMP with one projection size per layer,
      proj_size: [192, 128]         #   the SVD weighted by what 8 training batches feed each matrix
      calibration_batches: 8
    - kind: finetune                # recover what the cut lost
      max_steps: 1500

Both record per site the rank, the energy kept and the parameters before / after, the
model's parameters before / after, and the relative error of the model's outputs against
the input model on a few training batches (||y' - y|| / ||y||, one batch at a time from a
zero state).
"""

from __future__ import annotations

import copy
from typing import ClassVar, Literal

import torch
from pydantic import Field

from rnnslim.lowrank import LowRank, LowRankResult, ToLSTMP, lowrank_, to_lstmp_
from rnnslim.pipeline.model_fields import check_layer_keys, check_per_layer_sizes
from rnnslim.pipeline.stage import StageConfig, StageContext, register_stage
from rnnslim.recurrent.state import call_model


class _ErrorBatches(StageConfig):
    error_batches: int = Field(default=4, ge=0, le=1000, description="training batches (16 x 64) on which the relative "
                                                                      "output error is measured; 0: none")


class LowRankStage(_ErrorBatches, LowRank):
    """SVD low-rank factorization of the gate matrices and head (rank by energy, rank or max_params)."""

    kind: Literal["lowrank"] = "lowrank"
    changes_structure: ClassVar[bool] = True

    def check_against(self, model) -> None:
        super().check_against(model)
        sites = self.rank if isinstance(self.rank, dict) else {}  # {"input.0": 65, "recurrent.1": 128, "output": 32}
        check_layer_keys("rank", [s.partition(".")[2] for s in sites if s.partition(".")[2]], model)


class ToLSTMPStage(_ErrorBatches, ToLSTMP):
    """Convert LSTM layers to LSTMP (recurrent projection, torch's proj_size) from one SVD per layer."""

    kind: Literal["to_lstmp"] = "to_lstmp"
    changes_structure: ClassVar[bool] = True

    def check_against(self, model) -> None:
        super().check_against(model)
        check_per_layer_sizes("proj_size", self.proj_size, self.layers, model)


@torch.no_grad()
def relative_output_error(model, reference, batches) -> float | None:
    """||model(x) - reference(x)|| / ||reference(x)|| over the batches (eval mode, zero state)."""
    num = den = 0.0
    for b in batches:
        y = call_model(reference, b.inputs, None)
        y2 = call_model(model, b.inputs, None)
        y, y2 = (y[0] if isinstance(y, tuple) else y), (y2[0] if isinstance(y2, tuple) else y2)
        num += float((y2.float() - y.float()).pow(2).sum())
        den += float(y.float().pow(2).sum())
    return (num / den) ** 0.5 if den > 0 else None


def _run(model, cfg, ctx: StageContext, verb, config_cls):
    model.to(ctx.device).eval()
    reference = copy.deepcopy(model) if cfg.error_batches else None
    result: LowRankResult = verb(model, config_cls(**cfg.model_dump(exclude={"kind", "error_batches"})),
                                 calibration=ctx.task if cfg.calibration_batches else None)
    ctx.record.update(result.as_dict())
    if reference is not None:
        batches = [b.to(ctx.device) for b in ctx.task.calibration_batches(cfg.error_batches, 16, 64, seed=ctx.seed)]
        err = relative_output_error(model, reference, batches)
        ctx.record["relative_output_error"] = None if err is None else round(err, 6)
    return model


@register_stage(LowRankStage)
def run_lowrank(model, cfg: LowRankStage, ctx: StageContext):
    return _run(model, cfg, ctx, lowrank_, LowRank)


@register_stage(ToLSTMPStage)
def run_to_lstmp(model, cfg: ToLSTMPStage, ctx: StageContext):
    return _run(model, cfg, ctx, to_lstmp_, ToLSTMP)
