"""One training / fine-tuning loop for every task and every compression stage.

    result = train(model, task, TrainConfig(epochs=2, lr=2e-3), checkpoint_dir="runs/x")
    load_best(model, result)   # never worse on validation than the model train() got

- AdamW or SGD, gradient clipping, LR schedule (constant, cosine, linear, one-cycle)
  with linear warm-up, truncated BPTT for stateful tasks (state carried between windows).
  TrainConfig's defaults suit training from scratch; stages that fine-tune a trained
  model use rnnslim.train.finetune.FinetuneFields (lower lr, warm-up, whole-split evaluation).
- The input model is evaluated before the first step and is the first candidate for the
  best checkpoint; then every `eval_every` steps and at the end of every epoch. The best
  (primary metric; ties: lower task.tie_metric, e.g. a classifier's validation loss, then
  the later step) is kept in `checkpoint_dir/best` (in memory without a checkpoint dir),
  see train_best.py. A validation split of fewer than 30 sequences is named in the result
  (TrainResult.valid_note): its selection is coarse.
- Resumable: `checkpoint_dir/last` + trainer_state.pt (train_checkpoint.py); a rerun with
  the same config continues where it stopped, with the same result as an uninterrupted run.
- A non-finite loss, gradient norm or weight stops training with TrainingDiverged after
  restoring the model to the best candidate (or to its input); nothing non-finite is saved.
- Hooks: `after_step(model, step)` (re-apply pruning masks), `replace_loss(model, batch,
  outputs, task_loss)` (returns the loss to minimise instead of the task loss:
  distillation mixes), `extra_loss(model, batch, outputs)` (added: group lasso).
- Several processes: under torchrun (or with distributed=True) the model is wrapped in
  DistributedDataParallel and batch_size is the global batch, split among the processes;
  rank 0 evaluates and writes (train_ddp.py). device "cuda" then means cuda:LOCAL_RANK.
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
from rnnslim.train.best import BestKeeper, TrainingDiverged, best_step, small_valid_note
from rnnslim.train.checkpoint import (
    RunState,
    can_resume,
    load_training_state,
    save_training_state,
)
from rnnslim.utils.device import resolve_device
from rnnslim.utils.distributed import Dist, join

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


# Bounds that recipes enforce (rnnslim.pipeline.recipe STAGE_FLOAT_CAPS), held by the configs
# themselves so the Python API refuses the same values: every number finite, and at most these.
LR_MAX, WEIGHT_DECAY_MAX, MOMENTUM_MAX, CLIP_GRAD_MAX = 10.0, 100.0, 10.0, 1e6


class TrainConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
    epochs: int = Field(default=1, ge=1)
    max_steps: int | None = Field(default=None, ge=1,
                                  description="train for exactly this many optimizer steps (epochs is then ignored)")
    batch_size: int = Field(default=32, ge=1)
    seq_len: int = Field(default=64, ge=1, description="BPTT window (time steps per batch)")
    lr: float = Field(default=2e-3, gt=0, le=LR_MAX)
    optimizer: OptimizerKind = OptimizerKind.ADAMW
    weight_decay: float = Field(default=0.0, ge=0, le=WEIGHT_DECAY_MAX)
    momentum: float = Field(default=0.9, ge=0, le=MOMENTUM_MAX)
    clip_grad: float | None = Field(default=1.0, gt=0, le=CLIP_GRAD_MAX)
    schedule: ScheduleKind = ScheduleKind.COSINE
    warmup_steps: int = Field(default=0, ge=0, description="linear warm-up: lr * (step + 1) / warmup_steps")
    eval_every: int | None = Field(default=None, ge=1, description="also evaluate every N steps")
    eval_max_steps: int | None = Field(default=None, ge=1, description="cap on validation tokens/steps")
    eval_input: bool = Field(default=True, description="evaluate the model before the first step (the first candidate)")
    select_from_step: int = Field(default=0, ge=0,
                                  description="evaluations before this step are recorded but never kept as the best")
    patience: int | None = Field(default=None, ge=1, le=10**6,
                                 description="stop after this many evaluations in a row that do not lower the "
                                 "validation loss (None: never)")
    checkpoint_every: int = Field(default=200, ge=1, description="save a resumable checkpoint every N steps")
    seed: int = 0
    device: str = Field(default="cpu", description="cpu, cuda, cuda:N or mps (under torchrun cuda is cuda:LOCAL_RANK)")
    distributed: bool | None = Field(default=None,
                                     description="DDP over processes (train_ddp.py); None: when torchrun launched "
                                     "more than one, True: required, False: never; batch_size is the global batch")


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
        return {"steps": self.steps, "wall_s": round(self.wall_s, 2), "metric": self.metric,
                "input_valid": self.input_metric,
                "best_valid": self.best_metric, "best_step": self.best_step, "kept_input": self.kept_input,
                "evaluations": len(self.history),
                "final_valid": self.history[-1].get(self.metric) if self.history else None,
                "valid_note": self.valid_note}

    @property
    def valid_note(self) -> str | None:
        """A warning when the validation split is too small for a sharp selection (train_best.SMALL_VALID)."""
        return small_valid_note(self.history)


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


def _loss(model, task: Task, batch: Batch, state, hooks: TrainHooks, net=None) -> tuple[Tensor, object]:
    """Scalar training loss of one batch and the new recurrent state; `net` (the DDP wrapper of
    `model`) runs the forward when given, the hooks always see `model` itself."""
    outputs, new_state = (net or model)(batch.inputs, state)
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

    def __init__(self, model, task: Task, cfg: TrainConfig, ckpt: Path | None, hooks: TrainHooks, resume: bool,
                 dist: Dist, device: torch.device):
        import rnnslim.train.ddp as ddp

        self.model, self.task, self.cfg, self.ckpt, self.hooks, self.dist = model, task, cfg, ckpt, hooks, dist
        self.device = device
        if dist.active:
            ddp.check_batch_size(cfg.batch_size, dist.world)
            self.target_dim = ddp.targets_batch_dim(task)
        model.to(self.device)
        torch.manual_seed(ddp.rank_seed(cfg.seed, dist.rank))  # cfg.seed in one process
        self.opt = _make_optimizer(model, cfg)
        self.total = total_steps(task, cfg)
        self.resumed = dist.broadcast_json(resume and can_resume(ckpt))  # rank 0 decides
        self.run = (load_training_state(ckpt, model, self.opt, cfg.batch_size, self.device, dist.rank, dist.world)
                    if self.resumed else RunState())
        if dist.active and self.run.state is not None:
            self.run.state = ddp.local_state(self.run.state, dist.rank, dist.world)
        if ckpt:
            dist.leader_call(lambda: self._prepare_dir(ckpt))
        self.keeper = BestKeeper(model, task, cfg, ckpt, self.run)
        self.net = ddp.wrap(model, self.device) if dist.active else model

    def _prepare_dir(self, ckpt: Path) -> None:
        ckpt.mkdir(parents=True, exist_ok=True)
        if not self.resumed:
            shutil.rmtree(ckpt / "best", ignore_errors=True)  # a stale best of an earlier, restarted run

    def diverged(self, what: str) -> None:
        """Roll back (every rank to rank 0's weights) and raise TrainingDiverged."""
        from rnnslim.train.ddp import broadcast_module_

        try:
            self.keeper.diverged(self.model, what)
        except TrainingDiverged:
            if self.dist.active:
                broadcast_module_(self.dist, self.model)
            raise

    def shard(self, batch: Batch) -> tuple[Batch | None, float]:
        """This process's part of a global batch and its loss weight (the whole batch, 1.0, alone)."""
        if not self.dist.active:
            return batch, 1.0
        from rnnslim.train.ddp import shard_batch

        return shard_batch(batch, self.dist.rank, self.dist.world, self.target_dim)

    def step(self, batch: Batch, weight: float = 1.0) -> float:
        """One optimizer step; rolls back and raises TrainingDiverged on NaN/Inf. `weight`: this
        rank's share of a global batch that did not split evenly (train_ddp.shard_batch)."""
        model, run, cfg = self.model, self.run, self.cfg
        for g in self.opt.param_groups:
            g["lr"] = cfg.lr * _lr_factor(cfg, run.step, self.total)
        loss, new_state = _loss(model, self.task, batch, run.state if self.task.stateful else None, self.hooks,
                                self.net if self.dist.active else None)
        seen = loss  # the global mean loss: every rank sees the same value and takes the same branch
        if self.dist.active:
            seen = self.dist.sum_(loss.detach() * weight) / self.dist.world
            loss = loss * weight if weight != 1.0 else loss
        if not torch.isfinite(seen):
            self.diverged(f"loss became {seen.item()} at step {run.step}")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()  # DDP: gradients averaged over ranks here
        norm = _grad_norm(model, cfg.clip_grad)
        if not torch.isfinite(norm):  # checked before opt.step: the weights are still good
            self.diverged(f"gradient norm became {norm.item()} at step {run.step}")
        self.opt.step()
        run.step += 1
        for h in self.hooks.after_step:
            h(model, run.step)
        bad = _nonfinite_weight(model)
        if bad:
            self.diverged(f"weight {bad} became non-finite at step {run.step - 1}")
        run.state = detach_state(new_state) if self.task.stateful else None
        return seen.item()

    def evaluate(self, epoch: int) -> None:
        if not self.dist.active:
            self.keeper.evaluate(self.model, epoch)
        else:  # rank 0 evaluates the module itself (not the DDP wrapper); the others wait for the history
            self.dist.leader_call(lambda: self.keeper.evaluate(self.model, epoch))
            shared = self.dist.broadcast_json({"best": self.run.best, "history": self.run.history})
            self.run.best, self.run.history = shared["best"], shared["history"]
        self.model.train()

    def stalled(self) -> bool:
        """Early stopping on the validation loss: the last cfg.patience evaluations did not lower
        it below its minimum before them (accuracy on a few sequences is too coarse to wait on).
        Read from the history, so a resumed run stops where an uninterrupted one would."""
        p = self.cfg.patience
        losses = [h["loss"] for h in self.run.history if h["step"] >= self.cfg.select_from_step and "loss" in h]
        return p is not None and len(losses) > p and min(losses[-p:]) >= min(losses[:-p])

    def save(self, epoch: int, batch_in_epoch: int, state) -> None:
        if not self.ckpt:
            return
        if not self.dist.active:
            save_training_state(self.ckpt, self.model, self.opt, self.run, epoch, batch_in_epoch, state, self.cfg)
            return
        from rnnslim.train.ddp import global_state

        state = global_state(self.dist, state)  # every rank's streams, in the layout of one process
        rngs = self.dist.gather_cat(torch.get_rng_state().unsqueeze(0), 0).unbind(0)
        self.dist.leader_call(lambda: save_training_state(self.ckpt, self.model, self.opt, self.run, epoch,
                                                          batch_in_epoch, state, self.cfg, rng_ranks=list(rngs)))

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
            batch, weight = self.shard(batch)
            if batch is None:  # fewer samples than processes (a last, short batch): skipped by every rank
                continue
            loss = self.step(batch.to(self.device), weight)
            bar.update(1, loss=loss, lr=self.opt.param_groups[0]["lr"])
            if cfg.eval_every and run.step % cfg.eval_every == 0:
                self.evaluate(epoch)
                if self.stalled():
                    break
            if run.step % cfg.checkpoint_every == 0:
                self.save(epoch, b_idx + 1, run.state)
        run.skip = 0
        if not run.history or run.history[-1]["step"] != run.step:
            self.evaluate(epoch)
        self.save(epoch + 1, 0, None)

    def run_all(self, progress: bool, desc: str = "train") -> None:
        from rnnslim.utils.progress import progress_bar

        if not self.resumed and self.cfg.eval_input:
            self.evaluate(0)  # the input model: the first candidate for the best checkpoint
        bar = progress_bar(total=self.total, initial=self.run.step, desc=desc, enabled=progress)
        self.model.train()
        try:
            last_epoch = self.cfg.epochs if not self.cfg.max_steps else 1 << 62  # max_steps: as many as it takes
            for epoch in range(self.run.epoch, last_epoch):
                self.epoch(epoch, bar)
                if self.run.step >= self.total or self.stalled():
                    break
        finally:
            bar.close()
        self.model.eval()


def train(model: SequenceModel, task: Task, cfg: TrainConfig | None = None, checkpoint_dir: str | Path | None = None,
          hooks: TrainHooks | None = None, resume: bool = True, progress: bool = True,
          desc: str = "train") -> TrainResult:
    """Train `model` in place on `task`; see the module docstring. The model ends with the
    last step's weights: call load_best for the best candidate. progress: a bar named `desc`
    with ETA, loss and lr (rnnslim.utils.progress; False also hides the evaluations' bars)."""
    from rnnslim.utils.progress import progress_scope

    t0 = time.perf_counter()
    cfg = cfg or TrainConfig()
    task.check_model(model)
    device = resolve_device(cfg.device)
    dist = join(device, cfg.distributed)
    loop = None
    try:
        loop = _Loop(model, task, cfg, Path(checkpoint_dir) if checkpoint_dir else None, hooks or TrainHooks(), resume,
                     dist, dist.device_for(device))
        with progress_scope(progress and dist.leader):
            loop.run_all(progress and dist.leader, desc)
        best_path, best_state = loop.keeper.path, loop.keeper.memory
        if dist.active:  # every rank leaves with rank 0's best candidate
            from rnnslim.train.ddp import share_best

            received = share_best(dist, model, best_state, best_path)
            if not dist.leader:
                best_path, best_state = None, received
    finally:
        if loop is not None:  # DDP before its process group: a reducer outliving the group hangs in its destructor
            loop.net = None
        dist.close()
    return TrainResult(loop.run.step, loop.run.best, loop.run.history, best_path, task.primary_metric,
                       time.perf_counter() - t0, best_state)


def load_best(model: SequenceModel, result: TrainResult) -> SequenceModel:
    """Copy the best candidate's weights into `model` (from checkpoint_dir/best, or from
    memory when train() had no checkpoint dir); no-op when nothing was evaluated."""
    from rnnslim.io.format import load_model

    if result.best_path and (result.best_path / "model.json").exists():
        model.load_state_dict(load_model(result.best_path).state_dict())
    elif result.best_state is not None:
        model.load_state_dict(result.best_state)
    return model
