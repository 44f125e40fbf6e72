"""The Task contract: what the training loop, measurement and pipeline need from data.

A task owns its data splits ("train", "valid", "test"), builds batches in the model's
time-major layout, computes the training loss, and evaluates a metric. Stateful tasks
(language models) carry the recurrent state from one batch to the next (truncated BPTT).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from rnnslim.models.sequence import ModelSpec, SequenceModel

SPLITS = ("train", "valid", "test")


@dataclass
class Batch:
    inputs: Tensor  # (T, B) ids or (T, B, F) features
    targets: Tensor  # (T, B) ids, (B,) classes or (B, O) values

    def to(self, device) -> Batch:
        return Batch(self.inputs.to(device), self.targets.to(device))


class Task(ABC):
    name: str = "task"
    stateful: bool = False  # carry recurrent state across consecutive training batches
    primary_metric: str = "loss_nats"
    higher_is_better: bool = False
    tie_metric: str | None = None  # lower is better; breaks ties on primary_metric in checkpoint selection

    @abstractmethod
    def meta(self) -> dict:
        """Task metadata stored in the model manifest (vocabulary, classes, scaling...)."""

    @abstractmethod
    def model_spec(self, cell: str = "lstm", hidden_size: int = 128, num_layers: int = 2, dropout: float = 0.0,
                   embed_size: int | None = None, tie_weights: bool = False) -> ModelSpec:
        """The task's reference architecture."""

    @abstractmethod
    def batches(self, split: str, batch_size: int, seq_len: int, shuffle: bool = False,
                generator: torch.Generator | None = None) -> Iterator[Batch]:
        """One pass over a split."""

    @abstractmethod
    def loss(self, outputs: Tensor, batch: Batch) -> Tensor:
        """Mean training loss of the model outputs for a batch."""

    @abstractmethod
    def evaluate(self, model: SequenceModel, split: str = "valid", max_steps: int | None = None) -> dict:
        """Metrics on a split; always includes `loss` and the primary metric."""

    def calibration_batches(self, n: int, batch_size: int = 16, seq_len: int = 64, seed: int = 0) -> list[Batch]:
        """A few training batches for calibration (quantization observers, importance scores)."""
        g = torch.Generator().manual_seed(seed)
        out = []
        for b in self.batches("train", batch_size, seq_len, shuffle=True, generator=g):
            out.append(b)
            if len(out) >= n:
                break
        return out

    def check_split(self, split: str) -> None:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; use one of {SPLITS}")

    def check_model(self, model: SequenceModel) -> None:
        """Raise a clear error when a model does not fit this task's data."""
