"""Where a report was produced: the machine (rnnslim.measure.machine, the description every
measurement carries) plus host name, memory, device and the rnnslim checkout."""

from __future__ import annotations

import platform
from pathlib import Path

from rnnslim.measure.machine import git_state, machine_info as measured_machine

git_commit = git_state  # {commit, dirty}


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)  # kB -> GiB
    except (OSError, ValueError):
        pass
    return None


def machine_info(device: str = "cpu") -> dict:
    """CPU, memory, OS and library versions; the GPU name only when `device` is a GPU (so
    that a CPU report never initialises CUDA)."""
    import torch

    import rnnslim

    info = measured_machine().model_dump(mode="json")
    info.pop("git_commit", None)  # the report names the commit (and dirty state) itself
    info.update({"hostname": platform.node(), "memory_gib": _memory_gib(), "rnnslim": rnnslim.__version__,
                 "device": device})
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info
