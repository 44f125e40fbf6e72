"""One training / fine-tuning loop for every task and every compression stage.

    result = train(model, task, TrainConfig(epochs=2, lr=2e-3), checkpoint_dir="runs/x")
    load_best(model, result)   # never worse on validation than the model train() got

- AdamW or SGD, gradient clipping, LR schedule (constant, cosine, linear, one-cycle)
  with linear warm-up, truncated BPTT for stateful tasks (state carried between windows).
  TrainConfig's defaults suit training from scratch; stages that fine-tune a trained
  model use rnnslim.finetune.FinetuneFields (lower lr, warm-up, whole-split evaluation).
- The input model is evaluated before the first step and is the first candidate for the
  best checkpoint; then every `eval_every` steps and at the end of every epoch. The best
  is kept in `checkpoint_dir/best` (in memory without a checkpoint dir), see train_best.py.
- Resumable: `checkpoint_dir/last` + trainer_state.pt (train_checkpoint.py); a rerun with
  the same config continues where it stopped, with the same result as an uninterrupted run.
- A non-finite loss, gradient norm or weight stops training with TrainingDiverged after
  restoring the model to the best candidate (or to its input); nothing non-finite is saved.
- Hooks: `after_step(model, step)` (re-apply pruning masks), `replace_loss(model, batch,
  outputs, task_loss)` (returns the loss to minimise instead of the task loss:
  distillation mixes), `extra_loss(model, batch, outputs)` (added: group lasso).
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from rnnslim.models.sequence import SequenceModel
from rnnslim.recurrent.state import detach_state
from rnnslim.tasks.base import Batch, Task
from rnnslim.train_best import BestKeeper, TrainingDiverged, best_step
from rnnslim.train_checkpoint import (
    RunState,
    can_resume,
    load_training_state,
    save_training_state,
)

__all__ = ["OptimizerKind", "ScheduleKind", "TrainConfig", "TrainHooks", "TrainResult", "TrainingDiverged",
           "load_best", "steps_per_epoch", "total_steps", "train"]


class OptimizerKind(str, Enum):
    ADAMW = "adamw"
    SGD = "sgd"


class ScheduleKind(str, Enum):
    CONSTANT = "constant"
    COSINE = "cosine"
    LINEAR = "linear"
    ONECYCLE = "onecycle"


class TrainConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    epochs: int = Field(default=1, ge=1)
    max_steps: int | None = Field(default=None, ge=1,
                                  description="train for exactly this many optimizer steps (epochs is then ignored)")
    batch_size: int = Field(default=32, ge=1)
    seq_len: int = Field(default=64, ge=1, description="BPTT window (time steps per batch)")
    lr: float = Field(default=2e-3, gt=0)
    optimizer: OptimizerKind = OptimizerKind.ADAMW
    weight_decay: float = Field(default=0.0, ge=0)
    momentum: float = Field(default=0.9, ge=0)
    clip_grad: float | None = Field(default=1.0, gt=0)
    schedule: ScheduleKind = ScheduleKind.COSINE
    warmup_steps: int = Field(default=0, ge=0, description="linear warm-up: lr * (step + 1) / warmup_steps")
    eval_every: int | None = Field(default=None, ge=1, description="also evaluate every N steps")
    eval_max_steps: int | None = Field(default=None, ge=1, description="cap on validation tokens/steps")
    eval_input: bool = Field(default=True, description="evaluate the model before the first step (the first candidate)")
    select_from_step: int = Field(default=0, ge=0,
                                  description="evaluations before this step are recorded but never kept as the best")
    checkpoint_every: int = Field(default=200, ge=1, description="save a resumable checkpoint every N steps")
    seed: int = 0
    device: str = "cpu"


@dataclass
class TrainHooks:
    after_step: list[Callable[[torch.nn.Module, int], None]] = field(default_factory=list)
    extra_loss: list[Callable[[torch.nn.Module, Batch, Tensor], Tensor]] = field(default_factory=list)
    replace_loss: Callable[[torch.nn.Module, Batch, Tensor, Tensor], Tensor] | None = None


@dataclass
class TrainResult:
    steps: int
    best_metric: float | None
    history: list[dict]  # one entry per evaluation; step 0 is the input model
    best_path: Path | None = None
    metric: str = "loss"
    wall_s: float = 0.0
    best_state: dict | None = field(default=None, repr=False)  # best weights without a checkpoint dir

    @property
    def input_metric(self) -> float | None:
        first = self.history[0] if self.history else None
        return first.get(self.metric) if first and first["step"] == 0 else None

    @property
    def best_step(self) -> int | None:
        return best_step(self.history)

    @property
    def kept_input(self) -> bool:
        """No evaluation after the first step beat the input model."""
        return self.best_step == 0

    def summary(self) -> dict:
        """What a stage records about its fine-tuning (ctx.record)."""
        return {"steps": self.steps, "wall_s": round(self.wall_s, 2), "input_valid": self.input_metric,
                "best_valid": self.best_metric, "best_step": self.best_step, "kept_input": self.kept_input,
                "evaluations": len(self.history),
                "final_valid": self.history[-1].get(self.metric) if self.history else None}


def steps_per_epoch(task: Task, batch_size: int, seq_len: int) -> int:
    return sum(1 for _ in task.batches("train", batch_size, seq_len))


def total_steps(task: Task, cfg: TrainConfig) -> int:
    """Optimizer steps train() will run: max_steps, else epochs x batches per epoch."""
    return cfg.max_steps or steps_per_epoch(task, cfg.batch_size, cfg.seq_len) * cfg.epochs


def _lr_factor(cfg: TrainConfig, step: int, total: int) -> float:
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.schedule is ScheduleKind.ONECYCLE:
        peak = max(1, int(0.3 * total))
        if step < peak:
            return 0.04 + 0.96 * step / peak
        frac = (step - peak) / max(1, total - peak)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, frac))) + 1e-3
    frac = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
    frac = min(1.0, max(0.0, frac))
    if cfg.schedule is ScheduleKind.COSINE:
        return 0.5 * (1 + math.cos(math.pi * frac)) * 0.99 + 0.01
    if cfg.schedule is ScheduleKind.LINEAR:
        return 1.0 - 0.99 * frac
    return 1.0


def _make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer is OptimizerKind.SGD:
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def _loss(model, task: Task, batch: Batch, state, hooks: TrainHooks) -> tuple[Tensor, object]:
    """Scalar training loss of one batch and the new recurrent state."""
    outputs, new_state = model(batch.inputs, state)
    loss = task.loss(outputs, batch)
    if hooks.replace_loss is not None:
        loss = hooks.replace_loss(model, batch, outputs, loss)
    for extra in hooks.extra_loss:
        loss = loss + extra(model, batch, outputs)
    return loss, new_state


def _grad_norm(model: torch.nn.Module, clip: float | None) -> Tensor:
    """Total gradient norm (before clipping); clips in place when `clip` is set."""
    params = [p for p in model.parameters() if p.grad is not None]
    if clip:
        return torch.nn.utils.clip_grad_norm_(params, clip)
    return torch.nn.utils.get_total_norm([p.grad for p in params])


def _nonfinite_weight(model: torch.nn.Module) -> str | None:
    """Name of the first floating parameter holding NaN/Inf (one device sync when all are finite)."""
    named = [(n, p) for n, p in model.named_parameters() if p.is_floating_point()]
    if not named or torch.stack([torch.isfinite(p).all() for _, p in named]).all():
        return None
    return next(n for n, p in named if not torch.isfinite(p).all())


class _Loop:
    """One train() call: the optimizer, the run state and the best keeper."""

    def __init__(self, model, task: Task, cfg: TrainConfig, ckpt: Path | None, hooks: TrainHooks, resume: bool):
        self.model, self.task, self.cfg, self.ckpt, self.hooks = model, task, cfg, ckpt, hooks
        self.device = torch.device(cfg.device)
        model.to(self.device)
        torch.manual_seed(cfg.seed)
        self.opt = _make_optimizer(model, cfg)
        self.total = total_steps(task, cfg)
        self.resumed = resume and can_resume(ckpt)
        self.run = (load_training_state(ckpt, model, self.opt, cfg.batch_size, self.device) if self.resumed
                    else RunState())
        if ckpt:
            ckpt.mkdir(parents=True, exist_ok=True)
            if not self.resumed:
                shutil.rmtree(ckpt / "best", ignore_errors=True)  # a stale best of an earlier, restarted run
        self.keeper = BestKeeper(model, task, cfg, ckpt, self.run)

    def step(self, batch: Batch) -> float:
        """One optimizer step; rolls back and raises TrainingDiverged on NaN/Inf."""
        model, run, cfg = self.model, self.run, self.cfg
        for g in self.opt.param_groups:
            g["lr"] = cfg.lr * _lr_factor(cfg, run.step, self.total)
        loss, new_state = _loss(model, self.task, batch, run.state if self.task.stateful else None, self.hooks)
        if not torch.isfinite(loss):
            self.keeper.diverged(model, f"loss became {loss.item()} at step {run.step}")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = _grad_norm(model, cfg.clip_grad)
        if not torch.isfinite(norm):  # checked before opt.step: the weights are still good
            self.keeper.diverged(model, f"gradient norm became {norm.item()} at step {run.step}")
        self.opt.step()
        run.step += 1
        for h in self.hooks.after_step:
            h(model, run.step)
        bad = _nonfinite_weight(model)
        if bad:
            self.keeper.diverged(model, f"weight {bad} became non-finite at step {run.step - 1}")
        run.state = detach_state(new_state) if self.task.stateful else None
        return loss.item()

    def evaluate(self, epoch: int) -> None:
        self.keeper.evaluate(self.model, epoch)
        self.model.train()

    def save(self, epoch: int, batch_in_epoch: int, state) -> None:
        if self.ckpt:
            save_training_state(self.ckpt, self.model, self.opt, self.run, epoch, batch_in_epoch, state, self.cfg)

    def epoch(self, epoch: int, bar) -> None:
        run, cfg = self.run, self.cfg
        gen = torch.Generator().manual_seed(cfg.seed * 1000 + epoch)
        if run.skip == 0:
            run.state = None
        for b_idx, batch in enumerate(self.task.batches("train", cfg.batch_size, cfg.seq_len, shuffle=True,
                                                        generator=gen)):
            if b_idx < run.skip:
                continue
            if run.step >= self.total:
                break
            loss = self.step(batch.to(self.device))
            bar.update(1, loss=loss, lr=self.opt.param_groups[0]["lr"])
            if cfg.eval_every and run.step % cfg.eval_every == 0:
                self.evaluate(epoch)
            if run.step % cfg.checkpoint_every == 0:
                self.save(epoch, b_idx + 1, run.state)
        run.skip = 0
        if not run.history or run.history[-1]["step"] != run.step:
            self.evaluate(epoch)
        self.save(epoch + 1, 0, None)

    def run_all(self, progress: bool) -> None:
        from rnnslim.utils.progress import progress_bar

        if not self.resumed and self.cfg.eval_input:
            self.evaluate(0)  # the input model: the first candidate for the best checkpoint
        bar = progress_bar(total=self.total, initial=self.run.step, desc="train", enabled=progress)
        self.model.train()
        try:
            last_epoch = self.cfg.epochs if not self.cfg.max_steps else 1 << 62  # max_steps: as many as it takes
            for epoch in range(self.run.epoch, last_epoch):
                self.epoch(epoch, bar)
                if self.run.step >= self.total:
                    break
        finally:
            bar.close()
        self.model.eval()


def train(model: SequenceModel, task: Task, cfg: TrainConfig | None = None, checkpoint_dir: str | Path | None = None,
          hooks: TrainHooks | None = None, resume: bool = True, progress: bool = True) -> TrainResult:
    """Train `model` in place on `task`; see the module docstring. The model ends with the
    last step's weights: call load_best for the best candidate."""
    t0 = time.perf_counter()
    cfg = cfg or TrainConfig()
    task.check_model(model)
    loop = _Loop(model, task, cfg, Path(checkpoint_dir) if checkpoint_dir else None, hooks or TrainHooks(), resume)
    loop.run_all(progress)
    return TrainResult(loop.run.step, loop.run.best, loop.run.history, loop.keeper.path, task.primary_metric,
                       time.perf_counter() - t0, loop.keeper.memory)


def load_best(model: SequenceModel, result: TrainResult) -> SequenceModel:
    """Copy the best candidate's weights into `model` (from checkpoint_dir/best, or from
    memory when train() had no checkpoint dir); no-op when nothing was evaluated."""
    from rnnslim.io.format import load_model

    if result.best_path and (result.best_path / "model.json").exists():
        model.load_state_dict(load_model(result.best_path).state_dict())
    elif result.best_state is not None:
        model.load_state_dict(result.best_state)
    return model
