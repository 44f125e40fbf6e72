"""Training the exits with rnnslim's own loop (rnnslim.train.train and its TrainHooks).

    add_exits_(model, cfg)
    result = train_exits_(model, task, cfg, TrainConfig(max_steps=300, lr=2e-3))

joint: every weight trains; loss = sum_k w_k CE(exit k) with the model's decoder as the last
exit (its term is the task loss, or the distillation mix a replace_loss hook already gives).
heads: the backbone and the decoder are frozen (requires_grad False for the run, restored
after); loss = sum over the heads only.
time_weight > 0 adds, per exit, time_weight x the mean CE over every real (unpadded) prefix.

Checkpoint selection: train() keeps the best validation candidate by the task's metric, which
a frozen backbone never changes; so the run evaluates with ExitTask, whose primary metric is
the training objective on the validation split ("exit_loss", lower is better), with each
exit's accuracy beside it. On any error the model's weights and flags are restored.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from rnnslim.early_exit.config import EarlyExit, TrainMode
from rnnslim.early_exit.heads import require_exits
from rnnslim.early_exit.outputs import capture_layers, exit_logits
from rnnslim.tasks.base import Batch, Task
from rnnslim.train import TrainConfig, TrainHooks, TrainResult, load_best, train


def _real_steps(inputs: Tensor) -> Tensor:
    """(T, B) True from each sequence's first non-zero step (batches are front-padded with zeros)."""
    nonzero = inputs.flatten(2).abs().sum(-1) != 0 if inputs.dim() > 2 else inputs != 0
    return nonzero.long().cumsum(0) > 0


def exit_losses(model: nn.Module, hs: list[Tensor], batch: Batch, time_weight: float) -> list[Tensor]:
    """Per exit (the decoder last): CE of the full-sequence readout, plus time_weight x the mean
    CE over the real prefixes."""
    out = [F.cross_entropy(z.float(), batch.targets) for z in exit_logits(model, hs)]
    if time_weight:
        mask = _real_steps(batch.inputs)  # (T, B)
        for k, z in enumerate(exit_logits(model, hs, over_time=True)):  # (T, B, C)
            T = z.shape[0]
            ce = F.cross_entropy(z.float().flatten(0, 1), batch.targets.repeat(T), reduction="none").view(T, -1)
            out[k] = out[k] + time_weight * (ce * mask).sum() / mask.sum().clamp(min=1)
    return out


class ExitLoss:
    """replace_loss hook: the weighted sum of the exits' losses. Reads the layer outputs that
    the training forward left in `hs` (capture_layers)."""

    def __init__(self, hs: list[Tensor], cfg: EarlyExit, n_layers: int, inner=None) -> None:
        self.hs, self.cfg, self.inner = hs, cfg, inner
        self.weights = cfg.exit_weights(n_layers)

    def __call__(self, model, batch: Batch, outputs: Tensor, task_loss: Tensor) -> Tensor:
        if self.inner is not None:  # e.g. distillation: its mix replaces the decoder's plain CE
            task_loss = self.inner(model, batch, outputs, task_loss)
        losses = exit_losses(model, self.hs, batch, self.cfg.time_weight)
        heads_only = self.cfg.train_mode is TrainMode.HEADS
        total = sum(w * loss for w, loss in zip(self.weights[:-1], losses[:-1]))
        if not heads_only:
            last = losses[-1] - F.cross_entropy(outputs.float(), batch.targets) + task_loss  # = task loss + time term
            total = total + self.weights[-1] * last
        return total


class ExitTask(Task):
    """`task` with evaluation by the exits' objective (see the module docstring); all else delegated."""

    primary_metric = "exit_loss"
    higher_is_better = False

    def __init__(self, task: Task, cfg: EarlyExit) -> None:
        if not hasattr(task, "equal_length_batches"):
            raise TypeError(f"early-exit training needs a classification task (rnnslim.tasks.classify), "
                            f"got {type(task).__name__}")
        self.task, self.cfg = task, cfg
        self.name, self.stateful = task.name, task.stateful

    def meta(self) -> dict:
        return self.task.meta()

    def model_spec(self, *args, **kwargs):
        return self.task.model_spec(*args, **kwargs)

    def batches(self, *args, **kwargs):
        return self.task.batches(*args, **kwargs)

    def loss(self, outputs: Tensor, batch: Batch) -> Tensor:
        return self.task.loss(outputs, batch)

    def check_model(self, model) -> None:
        self.task.check_model(model)

    @torch.no_grad()
    def evaluate(self, model, split: str = "valid", max_steps: int | None = None) -> dict:
        was = model.training
        model.eval()
        n_layers = len(model.rnn.layers)
        weights = self.cfg.exit_weights(n_layers)
        if self.cfg.train_mode is TrainMode.HEADS:
            weights = weights[:-1] + [0.0]
        loss_sum, correct = 0.0, [0] * n_layers
        n = self.task.evaluated_count(split, max_steps)
        with capture_layers(model) as hs:
            for b in self.task.equal_length_batches(split, max_steps, model.decoder.weight.device):
                model(b.inputs)
                losses = exit_losses(model, hs, b, self.cfg.time_weight)
                loss_sum += float(sum(w * x for w, x in zip(weights, losses))) * len(b.targets)
                for k, z in enumerate(exit_logits(model, hs)):
                    correct[k] += int((z.argmax(-1) == b.targets).sum())
        model.train(was)
        return {"exit_loss": loss_sum / n, **{f"exit{k + 1}_accuracy": c / n for k, c in enumerate(correct)},
                "accuracy": correct[-1] / n, "sequences": n}


def train_exits_(model: nn.Module, task: Task, cfg: EarlyExit, train_cfg: TrainConfig,
                 checkpoint_dir=None, hooks: TrainHooks | None = None, progress: bool = False) -> TrainResult:
    """Train the exits (and, joint, the model) in place with rnnslim.train.train; loads the best
    validation candidate by the exits' objective. `hooks` may carry a replace_loss (distillation,
    applied to the decoder's term) and after_step hooks."""
    require_exits(model)
    hooks = hooks or TrainHooks()
    frozen = cfg.train_mode is TrainMode.HEADS
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    saved = copy.deepcopy(model.state_dict())
    try:
        if frozen:
            for name, p in model.named_parameters():
                p.requires_grad_(name.startswith("exits."))
        with capture_layers(model) as hs:
            run_hooks = TrainHooks(after_step=list(hooks.after_step), extra_loss=list(hooks.extra_loss),
                                   replace_loss=ExitLoss(hs, cfg, len(model.rnn.layers), hooks.replace_loss))
            result = train(model, ExitTask(task, cfg), train_cfg, checkpoint_dir=checkpoint_dir, hooks=run_hooks,
                           progress=progress)
            load_best(model, result)
    except BaseException:
        model.load_state_dict(saved)
        raise
    finally:
        for name, p in model.named_parameters():
            p.requires_grad_(flags[name])
    model.eval()
    return result
