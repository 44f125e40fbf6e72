"""Memory bandwidth measured in the same run: the time to stream a step's weights once.

A batch-1 recurrent step multiplies every weight once; the time to stream its weights from
memory (`floor_ms` = weight bytes read per step / bandwidth, shown as "stream ms") is a
reference point, not a lower bound: caches, and ORT's fp32 measured at 0.44x of it, beat it.
Bandwidth is measured as a large tensor copy (`dst.copy_(src)` into a pre-touched buffer,
so page faults are not timed), best of several, counting read + write bytes (STREAM "copy"
convention). Models small enough to sit in cache beat it; it is a DRAM figure.
On a CUDA device the copy is in GPU memory (synchronised around each copy).
"""

from __future__ import annotations

import time

import torch
from pydantic import BaseModel, ConfigDict

from rnnslim.measure.latency import torch_threads


class Bandwidth(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    threads: int
    bytes_per_s: float  # (read + write) bytes / second of the best copy
    copy_megabytes: int
    repeats: int

    @property
    def gb_per_s(self) -> float:
        return self.bytes_per_s / 1e9

    def floor_ms(self, bytes_per_step: int) -> float:
        return bytes_per_step / self.bytes_per_s * 1e3


def memory_bandwidth(threads: int = 1, megabytes: int = 256, repeats: int = 5,
                     device: str | torch.device = "cpu") -> Bandwidth:
    """Copy bandwidth with `threads` torch threads: best of `repeats` copies of `megabytes` MiB
    (on `device`: CPU memory, or a GPU's)."""
    n = megabytes * (1 << 20) // 4
    device = torch.device(device)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    with torch_threads(threads):
        src = torch.ones(n, dtype=torch.float32, device=device)
        dst = torch.empty_like(src)
        dst.copy_(src)  # touch every page of dst before timing
        best = float("inf")
        for _ in range(repeats):
            sync()
            t0 = time.perf_counter()
            dst.copy_(src)
            sync()
            best = min(best, time.perf_counter() - t0)
    del src, dst
    return Bandwidth(threads=threads, bytes_per_s=2 * n * 4 / best, copy_megabytes=megabytes, repeats=repeats)
