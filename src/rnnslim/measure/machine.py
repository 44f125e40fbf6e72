"""The machine a measurement ran on (every reported figure names it)."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict


class MachineInfo(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    cpu_model: str
    logical_cpus: int
    physical_cores: int | None
    torch_version: str
    torch_default_threads: int
    onednn_available: bool
    onnxruntime_version: str | None
    onnx_version: str | None
    python_version: str
    platform: str
    date_utc: str
    load_average: list[float] | None  # 1/5/15-minute load at the start: a busy machine gives noisy times
    git_commit: str | None
    gpus: list[str] | None = None  # CUDA devices visible to torch (None: no CUDA)


def _cpuinfo() -> tuple[str, int | None]:
    model, cores = platform.processor() or "unknown", None
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return model, cores
    pairs = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        pairs.setdefault(key.strip(), value.strip())
    cores_per_socket = pairs.get("cpu cores")
    sockets = {line.partition(":")[2].strip() for line in text.splitlines() if line.startswith("physical id")}
    if cores_per_socket and cores_per_socket.isdigit():
        cores = int(cores_per_socket) * max(len(sockets), 1)
    return pairs.get("model name", model), cores


def _version(module: str) -> str | None:
    try:
        return __import__(module).__version__
    except ImportError:
        return None


def git_state() -> dict:
    """{commit, dirty} of the git checkout rnnslim is imported from, or Nones (an installed
    wheel, no git): the one place every report and measurement gets its commit from."""
    repo = Path(__file__).resolve().parents[3]  # src/rnnslim/measure/machine.py -> checkout root
    out = {"commit": None, "dirty": None}
    if not (repo / "pyproject.toml").is_file():  # not a source checkout (e.g. site-packages)
        return out
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return out
        out["commit"] = head.stdout.strip() or None
        st = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                            capture_output=True, text=True, timeout=10)
        out["dirty"] = bool(st.stdout.strip()) if st.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def machine_info() -> MachineInfo:
    cpu, cores = _cpuinfo()
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return MachineInfo(
        cpu_model=cpu, logical_cpus=os.cpu_count() or 1, physical_cores=cores, torch_version=torch.__version__,
        torch_default_threads=torch.get_num_threads(), onednn_available=torch.backends.mkldnn.is_available(),
        onnxruntime_version=_version("onnxruntime"), onnx_version=_version("onnx"),
        python_version=platform.python_version(), platform=platform.platform(),
        date_utc=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), load_average=load,
        git_commit=git_state()["commit"],
        gpus=[torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available()
        else None)
