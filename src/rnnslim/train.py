"""One training / fine-tuning loop for every task and every compression stage.

    result = train(model, task, TrainConfig(epochs=2, lr=2e-3), checkpoint_dir="runs/x")

- AdamW or SGD, gradient clipping, LR schedule (constant, cosine, linear, one-cycle)
  with warm-up, truncated BPTT for stateful tasks (state carried between windows).
- Evaluation on the validation split every epoch (and every `eval_every` steps); the
  best model is kept in `checkpoint_dir/best`, the last in `checkpoint_dir/last`.
- Resumable: `checkpoint_dir/last` holds the model plus the optimizer, schedule, step,
  carried state and RNG (loaded with torch.load(weights_only=True)); a rerun with the
  same config continues where it stopped, with the same result as an uninterrupted run.
- A non-finite loss stops training with TrainingDiverged; checkpoints on disk stay good.
- Hooks: `after_step(model, step)` (re-apply pruning masks, projections) and
  `extra_loss(model, batch, outputs)` (distillation, group lasso) plug in without
  changing the loop.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from rnnslim.models.sequence import SequenceModel
from rnnslim.tasks.base import Batch, Task


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
    warmup_steps: int = Field(default=0, ge=0)
    eval_every: int | None = Field(default=None, ge=1, description="also evaluate every N steps")
    eval_max_steps: int | None = Field(default=None, ge=1, description="cap on validation tokens/steps")
    checkpoint_every: int = Field(default=200, ge=1, description="save a resumable checkpoint every N steps")
    seed: int = 0
    device: str = "cpu"


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass
class TrainHooks:
    after_step: list[Callable[[torch.nn.Module, int], None]] = field(default_factory=list)
    extra_loss: list[Callable[[torch.nn.Module, Batch, Tensor], Tensor]] = field(default_factory=list)


@dataclass
class TrainResult:
    steps: int
    best_metric: float | None
    history: list[dict]
    best_path: Path | None = None


def _steps_per_epoch(task: Task, cfg: TrainConfig) -> int:
    return sum(1 for _ in task.batches("train", cfg.batch_size, cfg.seq_len))


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


def _detach(state):
    if state is None:
        return None
    if isinstance(state, Tensor):
        return state.detach()
    return type(state)(_detach(s) for s in state)


def _flatten_state(state) -> list[Tensor]:
    if state is None:
        return []
    if isinstance(state, Tensor):
        return [state]
    return [t for s in state for t in _flatten_state(s)]


def _unflatten_like(template, flat: list[Tensor]):
    it = iter(flat)

    def rebuild(t):
        if isinstance(t, Tensor):
            return next(it)
        return type(t)(rebuild(s) for s in t)

    return rebuild(template)


def _save_training_state(ckpt: Path, model, opt, step, epoch, batch_in_epoch, best, history, state, cfg) -> None:
    from rnnslim.io.format import save_model

    save_model(model, ckpt / "last")
    blob = {
        "optimizer": opt.state_dict(),
        "step": step,
        "epoch": epoch,
        "batch_in_epoch": batch_in_epoch,
        "best": best if best is not None else float("nan"),
        "carried_state": _flatten_state(state),
        "torch_rng": torch.get_rng_state(),
    }
    fd, tmp = tempfile.mkstemp(dir=ckpt, suffix=".tmp")
    os.close(fd)
    torch.save(blob, tmp)
    os.replace(tmp, ckpt / "trainer_state.pt")
    (ckpt / "history.json").write_text(json.dumps({"config": cfg.model_dump(mode="json"), "history": history}, indent=1))


def train(model: SequenceModel, task: Task, cfg: TrainConfig | None = None, checkpoint_dir: str | Path | None = None,
          hooks: TrainHooks | None = None, resume: bool = True, progress: bool = True) -> TrainResult:
    """Train `model` in place on `task`; see the module docstring."""
    from rnnslim.io.format import load_model, save_model
    from rnnslim.utils.progress import progress_bar

    cfg = cfg or TrainConfig()
    hooks = hooks or TrainHooks()
    task.check_model(model)
    device = torch.device(cfg.device)
    model.to(device)
    torch.manual_seed(cfg.seed)
    opt = _make_optimizer(model, cfg)
    per_epoch = _steps_per_epoch(task, cfg)
    total = cfg.max_steps or per_epoch * cfg.epochs
    step, start_epoch, skip, best, history, state = 0, 0, 0, None, [], None
    ckpt = Path(checkpoint_dir) if checkpoint_dir else None

    if ckpt and resume and (ckpt / "trainer_state.pt").exists():
        saved = load_model(ckpt / "last")
        model.load_state_dict(saved.state_dict())
        blob = torch.load(ckpt / "trainer_state.pt", weights_only=True, map_location=device)
        opt.load_state_dict(blob["optimizer"])
        step, start_epoch, skip = blob["step"], blob["epoch"], blob["batch_in_epoch"]
        best = None if math.isnan(blob["best"]) else blob["best"]
        history = json.loads((ckpt / "history.json").read_text())["history"]
        torch.set_rng_state(blob["torch_rng"])
        if blob["carried_state"]:
            template = model.rnn.init_state(cfg.batch_size, device=device)
            state = _unflatten_like(template, [t.to(device) for t in blob["carried_state"]])
    if ckpt:
        ckpt.mkdir(parents=True, exist_ok=True)

    def evaluate_and_keep(epoch: int) -> None:
        nonlocal best
        metrics = task.evaluate(model, "valid", max_steps=cfg.eval_max_steps)
        value = metrics[task.primary_metric]
        better = best is None or (value > best if task.higher_is_better else value < best)
        if better:
            best = value
            if ckpt:
                save_model(model, ckpt / "best")
        history.append({"step": step, "epoch": epoch, **{k: v for k, v in metrics.items() if isinstance(v, (int, float))},
                        "best": better})

    bar = progress_bar(total=total, initial=step, desc="train", enabled=progress)
    model.train()
    try:
        last_epoch = cfg.epochs if not cfg.max_steps else 1 << 62  # with max_steps: as many epochs as it takes
        for epoch in range(start_epoch, last_epoch):
            gen = torch.Generator().manual_seed(cfg.seed * 1000 + epoch)
            if skip == 0:
                state = None
            for b_idx, batch in enumerate(task.batches("train", cfg.batch_size, cfg.seq_len, shuffle=True, generator=gen)):
                if b_idx < skip:
                    continue
                if step >= total:
                    break
                batch = batch.to(device)
                for g in opt.param_groups:
                    g["lr"] = cfg.lr * _lr_factor(cfg, step, total)
                outputs, new_state = model(batch.inputs, state if task.stateful else None)
                loss = task.loss(outputs, batch)
                for extra in hooks.extra_loss:
                    loss = loss + extra(model, batch, outputs)
                if not torch.isfinite(loss):
                    raise TrainingDiverged(f"loss became {loss.item()} at step {step}"
                                           + (f"; the last good checkpoints are in {ckpt}" if ckpt else ""))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.clip_grad:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
                opt.step()
                step += 1
                for h in hooks.after_step:
                    h(model, step)
                state = _detach(new_state) if task.stateful else None
                bar.update(1, loss=loss.item(), lr=opt.param_groups[0]["lr"])
                if cfg.eval_every and step % cfg.eval_every == 0:
                    evaluate_and_keep(epoch)
                    model.train()
                if ckpt and step % cfg.checkpoint_every == 0:
                    _save_training_state(ckpt, model, opt, step, epoch, b_idx + 1, best, history, state, cfg)
            skip = 0
            if not history or history[-1]["step"] != step:
                evaluate_and_keep(epoch)
                model.train()
            if ckpt:
                _save_training_state(ckpt, model, opt, step, epoch + 1, 0, best, history, None, cfg)
            if step >= total:
                break
    finally:
        bar.close()
    model.eval()
    return TrainResult(step, best, history, (ckpt / "best") if ckpt else None)


def load_best(model: SequenceModel, result: TrainResult) -> SequenceModel:
    """Copy the best checkpoint's weights into `model` (no-op without a checkpoint dir)."""
    from rnnslim.io.format import load_model

    if result.best_path and (result.best_path / "model.json").exists():
        model.load_state_dict(load_model(result.best_path).state_dict())
    return model
