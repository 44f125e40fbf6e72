"""Stages that need nothing but the training loop and torch: `finetune` and `cast`.

    - kind: finetune          # rnnslim.train.finetune: the best validation candidate, the input included
      max_steps: 500          # fields and defaults: rnnslim.train.finetune.FinetuneFields (lr 5e-4, warm-up,
      distill_alpha: 0.5      #   whole-split evaluation every steps // 5); here: mix in distillation
    - kind: cast              # store (and compute) every floating tensor in fp16 or bf16
      dtype: bf16
"""

from __future__ import annotations

from enum import Enum
from typing import Literal

import torch
from pydantic import Field, model_validator

from rnnslim.pipeline.stage import StageConfig, StageContext, register_stage
from rnnslim.train import steps_per_epoch
from rnnslim.train.finetune import FinetuneFields


class FinetuneConfig(StageConfig, FinetuneFields):
    """Fine-tune for max_steps steps (else `epochs` passes over the training split) with the
    shared fine-tuning fields; seed and device come from the pipeline."""

    kind: Literal["finetune"] = "finetune"
    epochs: int = Field(default=1, ge=1, description="passes over the training split when max_steps is not set")
    max_steps: int | None = Field(default=None, ge=1, description="stop after this many optimizer steps")

    @model_validator(mode="before")
    @classmethod
    def _legacy_schedule(cls, data):
        """Recipes written before FinetuneFields name the lr schedule `schedule`."""
        if isinstance(data, dict) and "schedule" in data:
            if "lr_schedule" in data:
                raise ValueError("give the lr schedule once: `lr_schedule` (`schedule` is its old name)")
            data = {**data, "lr_schedule": data["schedule"]}
            del data["schedule"]
        return data

    def trains_model(self) -> bool:
        return True

    def total_steps(self, task) -> int:
        """max_steps, else epochs passes (not given: 1, or 30 on a small classification set, rnnslim.train.finetune_small)."""
        from rnnslim.train.finetune_small import default_epochs

        epochs = self.epochs if "epochs" in self.model_fields_set else default_epochs(task)
        return self.max_steps or epochs * steps_per_epoch(task, self.batch_size, self.seq_len)


def integer_tensors(model: torch.nn.Module) -> list[str]:
    """Names of parameters/buffers with a non-floating dtype (quantized storage)."""
    named = list(model.named_parameters()) + list(model.named_buffers())
    return [f"{n} ({t.dtype})".replace("torch.", "") for n, t in named
            if not (t.is_floating_point() or t.is_complex())]


@register_stage(FinetuneConfig)
def finetune(model, cfg: FinetuneConfig, ctx: StageContext):
    quantized = integer_tensors(model)
    if quantized:
        raise ValueError(f"finetune cannot train a model with integer (quantized) tensors: {', '.join(quantized[:4])}"
                         f"{' ...' if len(quantized) > 4 else ''}; put fine-tuning before quantization stages")
    from rnnslim.pipeline.finetuning import masked_finetune

    # pruned weights stay zero; DCT / block-circulant weights stay in their subspace
    ctx.record.update(masked_finetune(model, cfg, cfg.total_steps(ctx.task), ctx, "train"))
    return model


class CastDType(str, Enum):
    FP16 = "fp16"
    BF16 = "bf16"

    @property
    def torch_dtype(self) -> torch.dtype:
        return torch.float16 if self is CastDType.FP16 else torch.bfloat16


class CastConfig(StageConfig):
    """Cast the whole model to another float dtype (fp16 / bf16 / fp32)."""

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
