"""Wall time of early-exit inference against the full model: same data, same thread count,
same process, interleaved repeats, medians.

    speed = measure_exit_speed(model, task, split="test", threads=1, repeats=5)
    speed["whole_batch"]  # {"full_s", "early_s", "speedup", ...}: equal-length batches (<= 256)
    speed["whole_b1"]     # one sequence at a time, whole sequence (depth exits only)
    speed["stream_b1"]    # one sequence at a time, one step at a time, state carried; the full
                          #   model is stepped the same way (model(x_t, state)): the loop a
                          #   streaming classifier runs; early exit stops reading when confident

Each repeat times one pass over the split (the sum over its batches / sequences); the first
pass of each variant is a warm-up and is not counted.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from rnnslim.early_exit.infer import exit_predict
from rnnslim.utils.threads import torch_threads


def _stream_full(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    state, out = None, None
    for t in range(x.shape[0]):
        out, state = model(x[t : t + 1], state)
    return out


def _time(passes: dict[str, Callable[[], None]], repeats: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {k: [] for k in passes}
    for r in range(repeats + 1):
        for k, fn in passes.items():  # interleaved, so drift hits every variant alike
            t0 = time.perf_counter()
            fn()
            if r:
                times[k].append(time.perf_counter() - t0)
    return times


def _row(times: dict[str, list[float]], layer_steps: int, total: int) -> dict:
    full, early = statistics.median(times["full"]), statistics.median(times["early"])
    return {"full_s": full, "early_s": early, "speedup": full / early if early else None,
            "full_s_all": times["full"], "early_s_all": times["early"],
            "layer_steps_fraction": layer_steps / max(1, total)}


@torch.inference_mode()
def measure_exit_speed(model: nn.Module, task, split: str = "test", threads: int = 1, repeats: int = 5,
                       max_steps: int | None = None, modes: tuple[str, ...] = ("whole_batch", "whole_b1", "stream_b1"),
                       stream_threshold: float | None = None, threshold: float | None = None) -> dict:
    """Median seconds per pass over the split for the full model and its early-exit inference."""
    model.eval()
    batches = list(task.equal_length_batches(split, max_steps, model.decoder.weight.device))
    singles = [b.inputs[:, i : i + 1] for b in batches for i in range(b.inputs.shape[1])]
    out: dict = {"threads": threads, "repeats": repeats, "sequences": len(singles)}
    with torch_threads(threads):
        for mode in modes:
            if mode == "whole_batch":
                data, full, early = [b.inputs for b in batches], (lambda x: model(x)), \
                    (lambda x: exit_predict(model, x, threshold))
            elif mode == "whole_b1":
                data, full, early = singles, (lambda x: model(x)), (lambda x: exit_predict(model, x, threshold))
            elif mode == "stream_b1":
                data, full = singles, (lambda x: _stream_full(model, x))
                early = lambda x: exit_predict(model, x, stream_threshold, early_time=True)  # noqa: E731
            else:
                raise ValueError(f"unknown timing mode {mode!r}; use whole_batch, whole_b1 or stream_b1")
            results = [early(x) for x in data]
            steps, total = sum(r.layer_steps for r in results), sum(r.total_layer_steps for r in results)
            times = _time({"full": lambda: [full(x) for x in data], "early": lambda: [early(x) for x in data]},
                          repeats)
            out[mode] = _row(times, steps, total)
    return out
