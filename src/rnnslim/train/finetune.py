"""Fine-tuning an already trained model: the fields every training stage shares, and the run.

One source of truth for the stages that train (`finetune`, `prune` / `prune_nm` /
`prune_block` with `finetune_steps`, AGP, `qat`): each declares only how many steps it
runs and inherits FinetuneFields. The defaults suit a converged model that a compression
step has just damaged, not training from scratch (rnnslim.train.TrainConfig):

    lr 5e-4 AdamW (a quarter of the from-scratch 2e-3), clip 1.0, cosine decay to 1 %
    warm-up: linear from lr / warmup_steps; default 5 % of the steps (at least 5, at most a quarter)
    evaluation: the input model before the first step (the first candidate), then every
                max(1, steps // 5) steps and at the end, on the WHOLE validation split
    dropout: None keeps the model's; a number sets it (every nn.Dropout, the inter-layer
             dropout of the recurrent stack, and the saved spec)
    distillation: loss = alpha * KD + (1 - alpha) * task loss (rnnslim.train.distill); the teacher
             is the pipeline's input model, or the model at `distill_teacher`

Small classification sets (fewer than 1,000 training sequences) get their own rule: 30 epochs
when the stage gives no step budget, one evaluation per epoch, early stopping after a quarter
of the evaluations (at least 10) that do not lower the validation loss (rnnslim.train.finetune_small).

The best validation candidate is handed back, so a stage never returns a model worse on
validation than its input. Chained stages each run their own short warm-up and cosine
decay from their own (low) lr; none restarts at a from-scratch lr.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from rnnslim.recurrent.stack import RecurrentStack
from rnnslim.train.finetune_small import small_set_plan
from rnnslim.train.loop import (
    CLIP_GRAD_MAX,
    LR_MAX,
    MOMENTUM_MAX,
    WEIGHT_DECAY_MAX,
    OptimizerKind,
    ScheduleKind,
    TrainConfig,
    TrainHooks,
    TrainResult,
    load_best,
    train,
)


class FinetuneFields(BaseModel):
    """Fine-tuning fields shared by every stage that trains (see the module docstring)."""

    # the same bounds as recipes (rnnslim.pipeline.recipe) and TrainConfig: every number finite,
    # lr at most 10, ... (LR_MAX and its neighbours in rnnslim.train)
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
    batch_size: int = Field(default=32, ge=1, le=4096)
    seq_len: int = Field(default=64, ge=1, le=100_000, description="BPTT window (time steps per batch)")
    lr: float = Field(default=5e-4, gt=0, le=LR_MAX, description="peak learning rate, reached after the warm-up")
    optimizer: OptimizerKind = OptimizerKind.ADAMW
    weight_decay: float = Field(default=0.0, ge=0, le=WEIGHT_DECAY_MAX)
    momentum: float = Field(default=0.9, ge=0, le=MOMENTUM_MAX, description="SGD only")
    clip_grad: float | None = Field(default=1.0, gt=0, le=CLIP_GRAD_MAX)
    lr_schedule: ScheduleKind = Field(default=ScheduleKind.COSINE, description="lr decay after the warm-up "
                                      "(named lr_schedule: `schedule` is the pruning schedule of the prune stages)")
    warmup_steps: int | None = Field(default=None, ge=0, le=10**7,
                                     description="linear warm-up; None: 5 % of the steps (at least 5, at most 1/4)")
    eval_every: int | None = Field(default=None, ge=1, le=10**7, description="evaluate every N steps; None: max(1, steps // 5)")
    eval_max_steps: int | None = Field(default=None, ge=1, description="cap on validation tokens; None: whole split")
    checkpoint_every: int = Field(default=200, ge=1, le=10**7, description="resumable checkpoint every N steps")
    dropout: float | None = Field(default=None, ge=0, lt=1,
                                  description="None: keep the model's; a number sets every dropout and the spec")
    distill_alpha: float = Field(default=0.0, ge=0, le=1,
                                 description="loss = alpha * distillation + (1 - alpha) * task loss (0: off)")
    distill_temperature: float = Field(default=2.0, gt=0, le=1e4,
                                       description="softmax temperature of the distillation loss")
    patience: int | None = Field(default=None, ge=1, le=10**6, description="stop after this many evaluations "
                                 "that do not lower the validation loss; None: never (small classification sets: finetune_small.py)")
    distill_teacher: str | None = Field(default=None,
                                        description="model path of the teacher; None: the pipeline's input model")

    def warmup_for(self, steps: int) -> int:
        if self.warmup_steps is not None:
            return self.warmup_steps
        return max(1, min(steps // 4, max(5, round(0.05 * steps))))

    def eval_every_for(self, steps: int) -> int:
        return self.eval_every or max(1, steps // 5)

    def train_config(self, steps: int, seed: int, device: str, select_from_step: int = 0) -> TrainConfig:
        """The TrainConfig of a run of `steps` optimizer steps with these fields."""
        names = set(FinetuneFields.model_fields) & set(TrainConfig.model_fields) - {"warmup_steps", "eval_every"}
        shared = self.model_dump(include=names)  # not a stage's own fields (max_steps, epochs, ...)
        return TrainConfig(**shared, schedule=self.lr_schedule, max_steps=steps, warmup_steps=self.warmup_for(steps),
                           eval_every=self.eval_every_for(steps), select_from_step=select_from_step, seed=seed,
                           device=device)


def set_dropout_(model: nn.Module, p: float) -> int:
    """Set every nn.Dropout's p, the recurrent stack's inter-layer dropout and model.spec.dropout
    (so the saved model keeps it); returns how many modules changed."""
    changed = 0
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p, changed = p, changed + 1
        elif isinstance(m, RecurrentStack):  # dropout between its layers (its torch modules are single-layer)
            m.dropout, changed = float(p), changed + 1
    spec = getattr(model, "spec", None)
    if spec is not None and hasattr(spec, "dropout"):
        model.spec = spec.model_copy(update={"dropout": p})
    return changed


def distill_hook(cfg: FinetuneFields, ctx, stateful: bool):
    """The DistillLoss replace_loss hook for cfg (None when distill_alpha is 0)."""
    if cfg.distill_alpha == 0:
        return None
    from rnnslim.train.distill import DistillLoss

    if cfg.distill_teacher:
        from rnnslim.io.format import load_model

        teacher = load_model(cfg.distill_teacher, map_location=ctx.device)
    elif ctx.teacher is not None:
        teacher = ctx.teacher.to(ctx.device)
    else:
        raise ValueError("distill_alpha > 0 needs a teacher: the pipeline's input model or distill_teacher")
    return DistillLoss(teacher, cfg.distill_alpha, cfg.distill_temperature, stateful=stateful)


def prepare_(model: nn.Module, cfg: FinetuneFields, ctx) -> TrainHooks:
    """Apply cfg.dropout to the model; hooks with the distillation loss (if any)."""
    if cfg.dropout is not None:
        set_dropout_(model, cfg.dropout)
    return TrainHooks(replace_loss=distill_hook(cfg, ctx, ctx.task.stateful))


def finetune_record(result: TrainResult, tcfg: TrainConfig, cfg: FinetuneFields, resumed: bool) -> dict:
    """ctx.record entries of one fine-tuning run (train.TrainResult.summary + the settings used)."""
    return {**result.summary(), "resumed_from_checkpoint": resumed, "lr": tcfg.lr, "warmup_steps": tcfg.warmup_steps,
            "eval_every": tcfg.eval_every, "eval_max_steps": tcfg.eval_max_steps, "dropout": cfg.dropout,
            "distill": ({"alpha": cfg.distill_alpha, "temperature": cfg.distill_temperature,
                         "teacher": cfg.distill_teacher or "input model"} if cfg.distill_alpha else None)}


def finetune_(model: nn.Module, cfg: FinetuneFields, steps: int, ctx, subdir: str = "train",
              after_step: list | None = None) -> dict:
    """Fine-tune `model` in place for `steps` steps in ctx.work_dir/subdir (resumable) and
    load the best validation candidate (the input model included); returns the record."""
    hooks = prepare_(model, cfg, ctx)
    hooks.after_step = list(after_step or [])
    ckpt = ctx.work_dir / subdir
    resumed = (ckpt / "trainer_state.pt").exists()
    tcfg, small = small_set_plan(ctx.task, cfg, cfg.train_config(steps, ctx.seed, ctx.device))
    result = train(model, ctx.task, tcfg, checkpoint_dir=ckpt, hooks=hooks, resume=True, progress=ctx.progress,
                   desc="finetune")
    load_best(model, result)
    model.eval()
    return {**finetune_record(result, tcfg, cfg, resumed), **({"small_set": small} if small else {})}
