"""Knowledge distillation mixed with the task loss (rnnslim.train.TrainHooks.replace_loss).

    loss = alpha * KD + (1 - alpha) * task loss,   KD = T^2 * KL(softmax(t / T) || softmax(s / T))

    train(student, task, cfg, hooks=TrainHooks(replace_loss=DistillLoss(teacher, alpha=0.5)))

(Hinton et al. 2015; the T^2 keeps gradient magnitudes comparable across temperatures.)
alpha = 1 trains on the teacher alone, alpha = 0 on the labels alone. The teacher (the
uncompressed model, eval mode, no gradients) runs once per batch. For stateful tasks
(language models) it carries its own recurrent state from batch to batch, like the
student does under truncated BPTT, so its predictions at the start of a window have context.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from rnnslim.recurrent.state import detach_state


def kd_loss(student: Tensor, teacher: Tensor, temperature: float) -> Tensor:
    """T^2 * KL(softmax(teacher / T) || softmax(student / T)), mean over positions.

    student, teacher: logits (..., V) (e.g. (T, B, V) for language models), any float dtype.
    """
    s = F.log_softmax(student.float() / temperature, dim=-1).reshape(-1, student.shape[-1])
    t = F.log_softmax(teacher.float() / temperature, dim=-1).reshape(-1, teacher.shape[-1])
    return temperature**2 * F.kl_div(s, t, log_target=True, reduction="batchmean")  # batchmean: per position


class DistillLoss:
    """A TrainHooks.replace_loss: alpha * KD + (1 - alpha) * task loss (see the module docstring)."""

    def __init__(self, teacher: nn.Module, alpha: float = 0.5, temperature: float = 2.0, stateful: bool = True) -> None:
        if not 0 <= alpha <= 1 or temperature <= 0:
            raise ValueError(f"need 0 <= alpha <= 1 and temperature > 0, got alpha={alpha}, temperature={temperature}")
        self.teacher = teacher.eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.alpha, self.T, self.stateful = alpha, temperature, stateful
        self._state = None

    def teacher_logits(self, inputs: Tensor) -> Tensor:
        """Teacher logits for one batch (no gradients), carrying the teacher's state if stateful."""
        if self._state is not None and _batch_of(self._state) != inputs.shape[1]:
            self._state = None  # a new stream layout (batch size changed): start from zeros
        with torch.no_grad():
            logits, state = self.teacher(inputs, self._state if self.stateful else None)
        if self.stateful:
            self._state = detach_state(state)
        return logits

    def __call__(self, model: nn.Module, batch, outputs: Tensor, task_loss: Tensor | None = None) -> Tensor:
        if task_loss is None:
            raise TypeError("DistillLoss mixes with the task loss: pass it as TrainHooks(replace_loss=...), "
                            "not in extra_loss")
        if self.alpha == 0:
            return task_loss
        kd = kd_loss(outputs, self.teacher_logits(batch.inputs), self.T)
        return self.alpha * kd + (1 - self.alpha) * task_loss


def _batch_of(state) -> int | None:
    while not isinstance(state, Tensor):
        if not state:
            return None
        state = state[0]
    return state.shape[1]  # torch state layout (D, B, H)
