"""Several processes (torchrun): joining the launch, and the few collectives rnnslim needs.

    torchrun --standalone --nproc_per_node 2 -m rnnslim.cli train --out runs/m ...

    d = join(torch.device("cpu"), enable=None)   # under torchrun: the process group (gloo / nccl)
    d.rank, d.world, d.leader                    # 0..world-1, world, rank == 0
    result = d.leader_call(lambda: write_files())  # rank 0 works, the others wait; an error on
                                                   # rank 0 is raised on every rank (no hang)
    d.close()                                    # destroys the group if join() created it

- `enable` None (auto): distributed when a process group is already initialised, or when
  torchrun's variables (RANK, WORLD_SIZE, LOCAL_RANK) say WORLD_SIZE > 1. True: required
  (world 1 allowed; an error without a launcher). False: this process works alone.
- Backend: nccl for CUDA devices (each process on cuda:LOCAL_RANK), gloo otherwise.
- Rank 0 alone reads and writes files (checkpoints, run directories, reports); the others
  wait in a collective. Rank 0's file work can take long (whole-split evaluation, latency
  measurement), so a group rnnslim creates waits RNNSLIM_DIST_TIMEOUT_S seconds (default
  7200) before a collective gives up.
- Metadata travels as JSON in a uint8 tensor (no pickle); tensors as raw bytes.
- A process may join, close and join again (two train() calls in one script, `train` then
  `compress`): the rendezvous store is made once and every group gets its own key prefix
  (a re-initialised default group would read the first group's stale addresses and hang).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as tdist
from torch import Tensor

T = TypeVar("T")
_STORE: dict[str, Any] = {"store": None, "groups": 0}  # one rendezvous store per process
LAUNCH_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
DEFAULT_TIMEOUT_S = 7200


def launched() -> bool:
    """torchrun (or an equivalent launcher) set RANK / WORLD_SIZE / LOCAL_RANK."""
    return all(k in os.environ for k in LAUNCH_ENV)


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    try:
        return int(raw) if raw else default
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r} is not an integer") from None


@dataclass
class Dist:
    """This process's place in a run; `active` False: one process, every collective is a no-op."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    active: bool = False
    owns: bool = False  # join() initialised the group: close() destroys it

    @property
    def leader(self) -> bool:
        return self.rank == 0

    @property
    def comm_device(self) -> torch.device:
        """Where collective buffers live: the current GPU under nccl, else the CPU."""
        if self.active and tdist.get_backend() == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")

    def device_for(self, device: torch.device) -> torch.device:
        """The device this rank computes on: cuda -> cuda:LOCAL_RANK when several processes share a machine."""
        if not self.active or device.type != "cuda":
            return device
        if device.index is not None and self.world > 1 and device.index != self.local_rank:
            raise ValueError(f"device {device} under torchrun: give --device cuda (each process then uses "
                             f"cuda:LOCAL_RANK), or restrict GPUs with CUDA_VISIBLE_DEVICES")
        return torch.device("cuda", self.local_rank)

    def close(self) -> None:
        if self.owns and tdist.is_initialized():
            tdist.destroy_process_group()
        self.owns = False

    # --- collectives (no-ops in a single process) ----------------------------------------
    def barrier(self) -> None:
        if self.active:
            tdist.barrier()

    def broadcast_json(self, obj: Any = None) -> Any:
        """Rank 0's `obj` (anything json.dumps takes) on every rank."""
        if not self.active:
            return obj
        dev = self.comm_device
        data = json.dumps(obj).encode() if self.leader else b""
        size = torch.tensor([len(data)], dtype=torch.int64, device=dev)
        tdist.broadcast(size, 0)
        buf = (torch.frombuffer(bytearray(data), dtype=torch.uint8).to(dev) if self.leader
               else torch.empty(int(size.item()), dtype=torch.uint8, device=dev))
        tdist.broadcast(buf, 0)
        return obj if self.leader else json.loads(bytes(buf.cpu().tolist()).decode())

    def leader_call(self, fn: Callable[[], T]) -> T | None:
        """fn() on rank 0 while the others wait; rank 0's exception is raised on every rank
        (RuntimeError naming it on the others). Returns fn()'s result on rank 0, None elsewhere."""
        if not self.active:
            return fn()
        out, error = None, None
        if self.leader:
            try:
                out = fn()
            except BaseException as e:  # noqa: BLE001 - re-raised below, after telling the others
                error = e
        msg = self.broadcast_json(None if error is None else f"{type(error).__name__}: {error}")
        if error is not None:
            raise error
        if msg is not None:
            raise RuntimeError(f"rank 0 failed: {msg}")
        return out

    def broadcast_(self, t: Tensor) -> Tensor:
        """Overwrite `t` with rank 0's values, in place (any dtype: sent as raw bytes)."""
        if not self.active:
            return t
        dev = self.comm_device
        flat = t.detach().contiguous().reshape(-1).view(torch.uint8).to(dev)  # bool / int8 / float alike
        tdist.broadcast(flat, 0)
        if not self.leader:
            with torch.no_grad():
                t.copy_(flat.to(t.device).view(t.dtype).reshape(t.shape))
        return t

    def sum_(self, t: Tensor) -> Tensor:
        """All-reduce (sum) in place."""
        if self.active:
            tdist.all_reduce(t)
        return t

    def gather_cat(self, t: Tensor, dim: int) -> Tensor:
        """Every rank's `t` (equal shapes) concatenated along `dim`, in rank order, on every rank."""
        if not self.active:
            return t
        dev = self.comm_device
        parts = [torch.empty_like(t, device=dev) for _ in range(self.world)]
        tdist.all_gather(parts, t.contiguous().to(dev))
        return torch.cat(parts, dim).to(t.device)


def join(device: torch.device, enable: bool | None = None) -> Dist:
    """This process's Dist (see the module docstring); initialises the process group if needed."""
    if enable is False or not tdist.is_available():
        if enable:
            raise ValueError("distributed training needs torch.distributed, which this torch build lacks")
        return Dist()
    if tdist.is_initialized():
        rank, world = tdist.get_rank(), tdist.get_world_size()
        return Dist(rank, world, _env_int("LOCAL_RANK", rank), active=True, owns=False)
    if not launched():
        if enable:
            raise ValueError("distributed training needs a launcher: run under torchrun (RANK, WORLD_SIZE and "
                             "LOCAL_RANK are not set), e.g. torchrun --standalone --nproc_per_node 2 -m rnnslim.cli ...")
        return Dist()
    rank, world, local = _env_int("RANK", 0), _env_int("WORLD_SIZE", 1), _env_int("LOCAL_RANK", 0)
    if world <= 1 and not enable:
        return Dist()
    if device.type == "cuda":
        torch.cuda.set_device(local)
    backend = "nccl" if device.type == "cuda" else "gloo"
    timeout = timedelta(seconds=_env_int("RNNSLIM_DIST_TIMEOUT_S", DEFAULT_TIMEOUT_S))
    if _STORE["store"] is None:  # MASTER_ADDR / MASTER_PORT (torchrun's agent store when it runs one)
        _STORE["store"] = next(tdist.rendezvous("env://", rank, world, timeout=timeout))[0]
    _STORE["groups"] += 1  # the same count on every rank: they join and close in step
    store = tdist.PrefixStore(f"rnnslim/group{_STORE['groups']}", _STORE["store"])
    tdist.init_process_group(backend, store=store, rank=rank, world_size=world, timeout=timeout)
    return Dist(rank, world, local, active=True, owns=True)


def process_rank() -> int:
    """This process's rank: the process group's, else torchrun's RANK, else 0 (one process)."""
    if tdist.is_available() and tdist.is_initialized():
        return tdist.get_rank()
    return _env_int("RANK", 0) if launched() else 0
