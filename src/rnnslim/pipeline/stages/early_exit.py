"""Pipeline stage `early_exit`: exit heads after each recurrent layer of a stacked classifier,
trained, with the confidence threshold calibrated on validation data and stored in the model.

    - kind: early_exit          # Linear heads, trained jointly with the model for 300 steps;
      max_steps: 300            #   threshold: the cheapest with <= 1 point lost on valid
    - kind: early_exit          # frozen backbone, only the heads train; also a streaming
      train_mode: heads         #   threshold (stop reading the sequence when confident),
      time_weight: 1.0          #   with the heads trained on every prefix
      streaming: true
      max_drop: 0.005

Fields: rnnslim.early_exit.EarlyExit (hidden, train_mode, weights, time_weight), the shared
fine-tuning fields (rnnslim.train.finetune.FinetuneFields; documented exception: lr 2e-3, the heads
start from scratch), max_steps, and the calibration (max_drop, streaming, threshold).
ctx.record: the training run (steps, wall time, best validation exit loss), the calibration
(threshold; its validation accuracy, bounded against the INPUT model's validation accuracy;
the fraction of layer-steps executed; the curve).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from rnnslim.early_exit import EarlyExit, add_exits_, calibrate_exits_, train_exits_
from rnnslim.pipeline.model_fields import check_count
from rnnslim.pipeline.stage import StageConfig, StageContext, register_stage
from rnnslim.train import LR_MAX
from rnnslim.train.finetune import FinetuneFields, finetune_record, prepare_


class EarlyExitStage(StageConfig, EarlyExit, FinetuneFields):
    """Exit heads after each layer of a stacked classifier, trained, with a calibrated confidence threshold."""

    kind: Literal["early_exit"] = "early_exit"
    max_steps: int = Field(default=300, ge=1, le=10**7, description="optimizer steps of the exits' training")
    lr: float = Field(default=2e-3, gt=0, le=LR_MAX, description="peak learning rate (the heads start from scratch)")
    max_drop: float = Field(default=0.01, ge=0, lt=1,
                            description="accuracy the threshold may cost on valid, a fraction (0.01 = 1 point)")
    streaming: bool = Field(default=False, description="also calibrate the streaming (early_time) threshold")
    threshold: float | None = Field(default=None, ge=0, le=2,
                                    description="use this whole-sequence threshold instead of calibrating one")

    def check_against(self, model) -> None:
        check_count("weights", self.weights, model)


@register_stage(EarlyExitStage)
def run_early_exit(model: nn.Module, cfg: EarlyExitStage, ctx: StageContext) -> nn.Module:
    model.to(ctx.device)
    reference = ctx.task.evaluate(model, "valid")[ctx.task.primary_metric]  # the input model: what the user had
    ee = EarlyExit(**cfg.model_dump(include=set(EarlyExit.model_fields)))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(ctx.seed)
        add_exits_(model, ee)
    hooks = prepare_(model, cfg, ctx)
    tcfg = cfg.train_config(cfg.max_steps, ctx.seed, ctx.device)
    ckpt = ctx.work_dir / "exits"
    resumed = (ckpt / "trainer_state.pt").exists()
    result = train_exits_(model, ctx.task, ee, tcfg, checkpoint_dir=ckpt, hooks=hooks, progress=ctx.progress)
    ctx.record.update({**finetune_record(result, tcfg, cfg, resumed), "train_mode": ee.train_mode.value,
                       "exits": len(model.exits.heads),
                       "head_parameters": sum(p.numel() for p in model.exits.parameters())})
    if cfg.threshold is not None:
        model.exits.set_thresholds(threshold=cfg.threshold)
        ctx.record["threshold"] = cfg.threshold
    else:
        ctx.record["calibration"] = calibrate_exits_(model, ctx.task, cfg.max_drop,
                                                    reference_accuracy=reference).to_dict()
    if cfg.streaming:
        ctx.record["stream_calibration"] = calibrate_exits_(model, ctx.task, cfg.max_drop, early_time=True,
                                                           reference_accuracy=reference).to_dict()
    return model
