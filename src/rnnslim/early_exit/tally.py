"""Early-exit metrics inside a task's evaluation (`rnnslim eval`, `rnnslim measure`, the
pipeline's measurements): rnnslim.tasks.classify's evaluate hands every equal-length batch
to an ExitTally when the model carries a calibrated threshold (registered with
rnnslim.tasks.extensions below; rnnslim.early_exit imports this module, so it always is).

With a threshold, `accuracy` and `loss` are those of the early-exit predictions (what the
model does when deployed with its exits); the full model's are kept as `full_accuracy` and
`full_loss`. Added: `layer_steps_fraction` (layer-steps executed / the full model's),
`exit_threshold`, `exited_at_layer_k` (sequences per exit), and the measured wall time of
this one evaluation pass, `early_exit_seconds` vs `full_seconds` (same batches, same threads).
With a streaming threshold too: `stream_accuracy`, `stream_layer_steps_fraction`,
`stream_steps_read_fraction`, `stream_seconds` (one sequence at a time, step by step).
"""

from __future__ import annotations

import time

import torch
from torch import nn
from torch.nn import functional as F

from rnnslim.early_exit.heads import exits_of
from rnnslim.early_exit.infer import exit_predict
from rnnslim.tasks.extensions import register_tally


class ExitTally:
    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.exits = exits_of(model)
        L = len(model.rnn.layers)
        self.n = self.correct = self.steps = self.total = 0
        self.loss_sum = self.seconds = 0.0
        self.per_exit = [0] * L
        self.stream = self.exits.stream_threshold is not None
        self.s_correct = self.s_steps = self.s_read = self.s_len = 0
        self.s_seconds = 0.0

    def add(self, batch) -> None:
        t0 = time.perf_counter()
        r = exit_predict(self.model, batch.inputs)
        self.seconds += time.perf_counter() - t0
        self.n += len(batch.targets)
        self.correct += int((r.logits.argmax(-1) == batch.targets).sum())
        self.loss_sum += F.cross_entropy(r.logits.float(), batch.targets, reduction="sum").item()
        self.steps += r.layer_steps
        self.total += r.total_layer_steps
        for k in range(len(self.per_exit)):
            self.per_exit[k] += int((r.exit_layer == k + 1).sum())
        if self.stream:
            for i in range(len(batch.targets)):  # batch 1: a stream is one sequence arriving
                x = batch.inputs[:, i : i + 1]
                t0 = time.perf_counter()
                s = exit_predict(self.model, x, early_time=True)
                self.s_seconds += time.perf_counter() - t0
                self.s_correct += int(s.logits.argmax(-1).item() == int(batch.targets[i]))
                self.s_steps += s.layer_steps
                self.s_read += int(s.steps_read.item())
                self.s_len += x.shape[0]

    def metrics(self, full: dict, full_seconds: float) -> dict:
        out = {**full, "full_accuracy": full["accuracy"], "full_loss": full["loss"],
               "accuracy": self.correct / self.n, "loss": self.loss_sum / self.n,
               "exit_threshold": self.exits.threshold, "layer_steps_fraction": self.steps / max(1, self.total),
               "early_exit_seconds": self.seconds, "full_seconds": full_seconds, "threads": torch.get_num_threads(),
               **{f"exited_at_layer_{k + 1}": c for k, c in enumerate(self.per_exit)}}
        if self.stream:
            out.update({"stream_threshold": self.exits.stream_threshold, "stream_accuracy": self.s_correct / self.n,
                        "stream_layer_steps_fraction": self.s_steps / max(1, self.total),
                        "stream_steps_read_fraction": self.s_read / max(1, self.s_len),
                        "stream_seconds": self.s_seconds})
        return out


def exit_tally(model: nn.Module) -> ExitTally | None:
    """An ExitTally when `model` has exits with a calibrated threshold, else None."""
    exits = exits_of(model)
    return ExitTally(model) if exits is not None and exits.threshold is not None else None


register_tally(exit_tally)  # classification evaluations report the exits' metrics (rnnslim.tasks.extensions)
