"""Where a model lives, for models that may hold only buffers (fully quantized)."""

from __future__ import annotations

import torch


def model_device(model: torch.nn.Module) -> torch.device:
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")
