"""Stages that need nothing but the training loop and torch: `finetune` and `cast`.

    - kind: finetune          # rnnslim.train.train on the task, keeps the best checkpoint
      max_steps: 500
      lr: 0.001
      distill_alpha: 0.5      # optional: distil from the pipeline's input model (temperature 2)
    - kind: cast              # store (and compute) every floating tensor in fp16 or bf16
      dtype: bf16
"""

from __future__ import annotations

from enum import Enum
from typing import Literal

import torch
from pydantic import Field

from rnnslim.pipeline.stage import StageConfig, StageContext, register_stage
from rnnslim.train import (
    OptimizerKind,
    ScheduleKind,
    TrainConfig,
    TrainHooks,
    load_best,
    train,
)


class FinetuneConfig(StageConfig):
    """The parts of rnnslim.train.TrainConfig a recipe may set (defaults are the same);
    seed and device come from the pipeline."""

    kind: Literal["finetune"] = "finetune"
    epochs: int = Field(default=1, ge=1)
    max_steps: int | None = Field(default=None, ge=1, description="stop after this many optimizer steps")
    batch_size: int = Field(default=32, ge=1)
    seq_len: int = Field(default=64, ge=1, description="BPTT window (time steps per batch)")
    lr: float = Field(default=2e-3, gt=0)
    optimizer: OptimizerKind = OptimizerKind.ADAMW
    weight_decay: float = Field(default=0.0, ge=0)
    momentum: float = Field(default=0.9, ge=0, description="SGD only")
    clip_grad: float | None = Field(default=1.0, gt=0)
    schedule: ScheduleKind = ScheduleKind.COSINE
    warmup_steps: int = Field(default=0, ge=0)
    eval_every: int | None = Field(default=None, ge=1, description="also evaluate every N steps")
    eval_max_steps: int | None = Field(default=None, ge=1, description="cap on validation tokens")
    checkpoint_every: int = Field(default=200, ge=1, description="resumable checkpoint every N steps")
    distill_alpha: float = Field(default=0.0, ge=0, description="weight of distillation from the input model (0: off)")
    distill_temperature: float = Field(default=2.0, gt=0, description="softmax temperature of the distillation loss")

    def train_config(self, seed: int, device: str) -> TrainConfig:
        fields = self.model_dump(exclude={"kind", "distill_alpha", "distill_temperature"})
        return TrainConfig(**fields, seed=seed, device=device)


def integer_tensors(model: torch.nn.Module) -> list[str]:
    """Names of parameters/buffers with a non-floating dtype (quantized storage)."""
    named = list(model.named_parameters()) + list(model.named_buffers())
    return [f"{n} ({t.dtype})".replace("torch.", "") for n, t in named
            if not (t.is_floating_point() or t.is_complex())]


def _mask_hooks(model: torch.nn.Module) -> tuple[list, int]:
    """after_step hooks that keep pruned weights at zero, and the number of masked tensors.

    Passing the model attaches gradient hooks too, so pruned weights never reach gradient
    clipping or the optimizer's moments.
    """
    from rnnslim.prune.masks import mask_hook, masks_from_model

    masks = masks_from_model(model)
    if not masks:
        return [], 0
    return [mask_hook(masks, model)], len(masks)


@register_stage(FinetuneConfig)
def finetune(model, cfg: FinetuneConfig, ctx: StageContext):
    quantized = integer_tensors(model)
    if quantized:
        raise ValueError(f"finetune cannot train a model with integer (quantized) tensors: {', '.join(quantized[:4])}"
                         f"{' ...' if len(quantized) > 4 else ''}; put fine-tuning before quantization stages")
    hooks, n_masked = _mask_hooks(model)
    extra = []
    if cfg.distill_alpha > 0:
        if ctx.teacher is None:
            raise ValueError("distill_alpha > 0 needs a teacher (the pipeline's input model)")
        from rnnslim.distill import DistillLoss

        extra.append(DistillLoss(ctx.teacher.to(ctx.device), cfg.distill_alpha, cfg.distill_temperature,
                                 stateful=ctx.task.stateful))
    ckpt = ctx.work_dir / "train"
    resumed = (ckpt / "trainer_state.pt").exists()
    try:
        result = train(model, ctx.task, cfg.train_config(ctx.seed, ctx.device), checkpoint_dir=ckpt,
                       hooks=TrainHooks(after_step=hooks, extra_loss=extra), resume=True, progress=ctx.progress)
    finally:
        for h in hooks:  # MaskHook registers gradient hooks on the parameters; do not leave them behind
            getattr(h, "remove", lambda: None)()
    load_best(model, result)  # the best validation checkpoint, not the last step
    model.eval()
    evals = [h for h in result.history if ctx.task.primary_metric in h]
    ctx.record.update({
        "steps": result.steps,
        "resumed_from_checkpoint": resumed,
        "masked_tensors": n_masked,
        "best_valid": result.best_metric,
        "first_valid": evals[0][ctx.task.primary_metric] if evals else None,
        "evaluations": len(evals),
        "distill": {"alpha": cfg.distill_alpha, "temperature": cfg.distill_temperature} if extra else None,
    })
    return model


class CastDType(str, Enum):
    FP16 = "fp16"
    BF16 = "bf16"

    @property
    def torch_dtype(self) -> torch.dtype:
        return torch.float16 if self is CastDType.FP16 else torch.bfloat16


class CastConfig(StageConfig):
    kind: Literal["cast"] = "cast"
    dtype: CastDType


@register_stage(CastConfig)
def cast(model, cfg: CastConfig, ctx: StageContext):
    """Every floating parameter and buffer goes to cfg.dtype (integer tensors stay as they
    are); torch modules then compute in that dtype too. Tasks cast logits to float32
    before the loss, so metrics stay comparable."""
    dtype = cfg.dtype.torch_dtype
    tensors = list(model.parameters()) + list(model.buffers())
    floating = [t for t in tensors if t.is_floating_point()]
    before = sum(t.numel() * t.element_size() for t in floating)
    changed = sum(1 for t in floating if t.dtype != dtype)
    model.to(dtype)  # nn.Module.to(dtype) casts floating tensors only; nn.LSTM re-flattens its weights
    after = sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers())
                if t.is_floating_point())
    ctx.record.update({"dtype": cfg.dtype.value, "tensors_cast": changed,
                       "floating_bytes_before": before, "floating_bytes_after": after})
    return model
