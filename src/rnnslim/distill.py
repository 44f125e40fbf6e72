"""Knowledge distillation as an extra training loss (rnnslim.train.TrainHooks.extra_loss).

    loss = task loss + alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T))

(Hinton et al. 2015; the T^2 keeps gradient magnitudes comparable across temperatures.)
The teacher is the uncompressed model in eval mode. For stateful tasks (language models)
the teacher carries its own recurrent state from batch to batch, like the student does
under truncated BPTT, so its predictions at the start of a window have context.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class DistillLoss:
    def __init__(self, teacher: nn.Module, alpha: float = 0.5, temperature: float = 2.0, stateful: bool = True) -> None:
        if alpha < 0 or temperature <= 0:
            raise ValueError(f"need alpha >= 0 and temperature > 0, got alpha={alpha}, temperature={temperature}")
        self.teacher = teacher.eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.alpha, self.T, self.stateful = alpha, temperature, stateful
        self._state = None

    def _teacher_logits(self, inputs: Tensor) -> Tensor:
        if self._state is not None and _batch_of(self._state) != inputs.shape[1]:
            self._state = None  # a new stream layout (batch size changed): start from zeros
        with torch.no_grad():
            logits, state = self.teacher(inputs, self._state if self.stateful else None)
        if self.stateful:
            self._state = _detach(state)
        return logits

    def __call__(self, model: nn.Module, batch, outputs: Tensor) -> Tensor:
        t = self._teacher_logits(batch.inputs).float()
        s = outputs.float()
        kl = F.kl_div(F.log_softmax(s / self.T, dim=-1).reshape(-1, s.shape[-1]),
                      F.log_softmax(t / self.T, dim=-1).reshape(-1, t.shape[-1]), log_target=True, reduction="batchmean")
        return self.alpha * self.T**2 * kl


def _detach(state):
    if isinstance(state, Tensor):
        return state.detach()
    return type(state)(_detach(s) for s in state)


def _batch_of(state) -> int | None:
    while not isinstance(state, Tensor):
        if not state:
            return None
        state = state[0]
    return state.shape[1]  # torch state layout (D, B, H)
