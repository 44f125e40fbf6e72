"""Where a report was produced: the machine, the software, the rnnslim checkout."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)  # kB -> GiB
    except (OSError, ValueError):
        pass
    return None


def machine_info(device: str = "cpu") -> dict:
    """CPU, memory, OS and library versions; the GPU name only when `device` is a GPU
    (so that a CPU report never initialises CUDA). Uses rnnslim.measure.machine (the
    description every measurement carries) when it is installed."""
    import torch

    import rnnslim

    try:
        from rnnslim.measure.machine import machine_info as measured
    except ModuleNotFoundError as e:
        if e.name not in ("rnnslim.measure", "rnnslim.measure.machine"):
            raise
        info = {"cpu_model": _cpu_model(), "logical_cpus": os.cpu_count(), "torch_version": torch.__version__,
                "torch_default_threads": torch.get_num_threads(), "python_version": platform.python_version(),
                "platform": platform.platform()}
    else:
        info = measured().model_dump(mode="json")
        info.pop("git_commit", None)  # the report names the commit (and dirty state) itself
    info.update({"hostname": platform.node(), "memory_gib": _memory_gib(), "rnnslim": rnnslim.__version__,
                 "device": device})
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def git_commit() -> dict:
    """{commit, dirty} of the git checkout rnnslim is imported from, or Nones (installed wheel,
    no git)."""
    import rnnslim

    repo = Path(rnnslim.__file__).resolve().parents[2]  # src/rnnslim/__init__.py -> checkout root
    out = {"commit": None, "dirty": None}
    if not (repo / "pyproject.toml").is_file():  # not a source checkout (e.g. site-packages)
        return out
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return out
        out["commit"] = head.stdout.strip()
        st = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                            capture_output=True, text=True, timeout=10)
        out["dirty"] = bool(st.stdout.strip()) if st.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        pass
    return out
