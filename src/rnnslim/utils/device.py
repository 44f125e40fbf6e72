"""Where a model lives, and which device a user asked for.

    resolve_device("cuda:1")   # torch.device('cuda', 1), or a ValueError saying why not
    model_device(model)        # the device of its first parameter (or buffer: fully quantized models)

Every command that trains or measures (train, eval, measure, compress, the finetune stage)
takes `device` as "cpu", "cuda", "cuda:N" or "mps" and resolves it here, so asking for a
GPU that is not there fails at once with one clear line instead of deep inside torch.
"""

from __future__ import annotations

import torch

KNOWN = ("cpu", "cuda", "mps")


def model_device(model: torch.nn.Module) -> torch.device:
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")


def resolve_device(name: str | torch.device) -> torch.device:
    """`name` as a torch.device that exists on this machine (see the module docstring)."""
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        raise ValueError(f"unknown device {name!r}; use cpu, cuda, cuda:N or mps") from None
    if dev.type not in KNOWN:
        raise ValueError(f"device {name!r} is not supported; use cpu, cuda, cuda:N or mps")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = ("this torch is built without CUDA" if torch.version.cuda is None
                   else "no GPU is visible (driver, CUDA_VISIBLE_DEVICES?)")
            raise ValueError(f"device {name!r} was requested but CUDA is not available: {why} "
                             f"(torch {torch.__version__}); use --device cpu")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise ValueError(f"device {name!r}: this machine has {count} CUDA device(s) (cuda:0..cuda:{count - 1})")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {name!r} was requested but MPS (Apple GPU) is not available; use --device cpu")
    return dev
