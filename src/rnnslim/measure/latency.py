"""Streaming step latency and batch throughput (CPU, or a CUDA GPU), as BENCHMARKING.md prescribes.

Streaming: one time step at batch 1 with the state carried from step to step (a keyboard,
a keyword spotter, a sensor loop). `warmup` steps first, then `repeats` rounds of `steps`
timed steps each; every round gives the median of its step times, and the result is the
median of those medians with their min/max as the spread. The stream continues across
rounds; inputs cycle through a fixed random sequence so every run sees the same data.

Throughput: time steps per second for one forward pass over a (seq_len, batch) input
from a zero state (default 64 x 128), median over `repeats` passes after one warm-up pass.

Threads: `torch.set_num_threads(threads)` for the measurement, restored afterwards. The
garbage collector is paused while timing (a collection in the middle of a 50 us step
would be measured as the model's time).

CUDA: kernels run asynchronously, so every closure for a model on a GPU ends with
torch.cuda.synchronize() (a step's latency lasts until its output is ready; the next input
of a streaming loop needs it). `graph_step(model)` replays one streaming step from a
torch.cuda.CUDAGraph: static input and state buffers, the forward and the copy of the new
state into the state buffers captured once (after a warm-up on a side stream), so a step is
one input copy, one graph launch and a sync instead of one launch per kernel, which is what
costs most at batch 1. Compare it with cuDNN's nn.LSTM/GRU step (measure's "torch nn" rows).
"""

from __future__ import annotations

import contextlib
import gc
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from rnnslim.utils.threads import torch_threads  # noqa: F401 (re-exported)

N_INPUTS = 256  # distinct streaming inputs cycled through


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Collect once, then keep the garbage collector off inside the block (a collection in a timed
    loop is a multi-ms outlier); restored on exit, also on error."""
    was = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def time_stream(step: Callable[[], Any], steps: int = 200, repeats: int = 5, warmup: int = 50,
                clock: Callable[[], int] = time.perf_counter_ns) -> dict:
    """Median of per-round medians of `step()` wall time (ms), with the spread of the round medians.
    `clock()`: integer nanoseconds (tests inject a scripted one to check the arithmetic)."""
    if steps < 1 or repeats < 1 or warmup < 0:
        raise ValueError(f"need steps >= 1, repeats >= 1, warmup >= 0 (got {steps}, {repeats}, {warmup})")
    with gc_paused():
        for _ in range(warmup):
            step()
        medians = []
        for _ in range(repeats):
            times = [0] * steps
            for i in range(steps):
                t0 = clock()
                step()
                times[i] = clock() - t0
            medians.append(statistics.median(times) / 1e6)
    return {"median_ms": statistics.median(medians), "spread_ms": [min(medians), max(medians)],
            "medians_ms": medians, "steps": steps, "repeats": repeats, "warmup": warmup}


def time_batch(run: Callable[[], Any], steps_per_call: int, repeats: int = 3, warmup: int = 1,
               clock: Callable[[], float] = time.perf_counter) -> dict:
    """Time steps per second of `run()` (which processes `steps_per_call` time steps in total).
    `clock()`: seconds (tests inject a scripted one to check the arithmetic)."""
    with gc_paused():
        for _ in range(warmup):
            run()
        secs = []
        for _ in range(repeats):
            t0 = clock()
            run()
            secs.append(clock() - t0)
    rates = [steps_per_call / s for s in secs]
    return {"steps_per_s": statistics.median(rates), "spread_steps_per_s": [min(rates), max(rates)],
            "seconds": statistics.median(secs), "repeats": repeats}


# --- inputs and step closures for modules with SequenceModel's forward contract -------
def input_kind(model: nn.Module) -> tuple[str, int]:
    """("ids", vocab) or ("features", F) from a SequenceModel-like `spec`."""
    spec = getattr(model, "spec", None)
    if spec is None:
        raise TypeError(f"{type(model).__name__} has no `spec` (SequenceModel contract); pass step_fn= / batch_fn= "
                        "to time your own module")
    kind = "ids" if spec.input_kind.value == "embedding" else "features"
    return kind, int(spec.input_size)


def random_inputs(model: nn.Module, seq_len: int, batch: int, seed: int = 0) -> torch.Tensor:
    """(seq_len, batch) token ids or (seq_len, batch, F) features, reproducible."""
    kind, size = input_kind(model)
    g = torch.Generator().manual_seed(seed)
    if kind == "ids":
        return torch.randint(0, size, (seq_len, batch), generator=g)
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    return torch.randn(seq_len, batch, size, generator=g).to(dtype)


def _device_of(model: nn.Module) -> torch.device:
    from rnnslim.utils.device import model_device

    return model_device(model)


def synced(fn: Callable[[], None], device: torch.device) -> Callable[[], None]:
    """`fn` followed by torch.cuda.synchronize() on a CUDA device; `fn` itself elsewhere."""
    if device.type != "cuda":
        return fn

    def run() -> None:
        fn()
        torch.cuda.synchronize(device)

    return run


def module_step(model: nn.Module, seed: int = 0) -> Callable[[], None]:
    """A closure doing one streaming step `model(x_t, state)` at batch 1, carrying the state."""
    device = _device_of(model)
    xs = list(random_inputs(model, N_INPUTS, 1, seed).to(device).unbind(0))  # each (1,) or (1, F)
    xs = [x.unsqueeze(0) for x in xs]  # (1, 1) ids or (1, 1, F)
    box: dict[str, Any] = {"state": None, "i": 0}

    def step() -> None:
        i = box["i"]
        _, box["state"] = model(xs[i % N_INPUTS], box["state"])
        box["i"] = i + 1

    return synced(step, device)


def module_batch(model: nn.Module, batch: int, seq_len: int, seed: int = 0) -> Callable[[], None]:
    device = _device_of(model)
    x = random_inputs(model, seq_len, batch, seed).to(device)

    def run() -> None:
        model(x, None)

    return synced(run, device)


def _flat(state) -> list[torch.Tensor]:
    if isinstance(state, torch.Tensor):
        return [state]
    return [t for s in state for t in _flat(s)]


def _zeros_like(state):
    if isinstance(state, torch.Tensor):
        return torch.zeros_like(state)
    return type(state)(_zeros_like(s) for s in state)


def graph_step(model: nn.Module, seed: int = 0, warmup: int = 3) -> Callable[[], None]:
    """One streaming step of `model` (on a CUDA device, SequenceModel's forward contract)
    replayed from a CUDA graph, state carried in static buffers (see the module docstring)."""
    device = _device_of(model)
    if device.type != "cuda" or not torch.cuda.is_available():
        raise ValueError(f"a CUDA-graph step needs the model on a CUDA device, not on {device}")
    xs = random_inputs(model, N_INPUTS, 1, seed).to(device).unsqueeze(1)  # (N, 1, 1) ids or (N, 1, 1, F)
    static_x = xs[0].clone()
    with torch.no_grad():
        _, state = model(static_x, None)
        static_state = _zeros_like(state)  # the graph reads the state from here and writes it back
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):  # warm-up off the capture stream (allocations, cuDNN plans)
            for _ in range(warmup):
                model(static_x, static_state)
        torch.cuda.current_stream(device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out, new_state = model(static_x, static_state)
            for dst, src in zip(_flat(static_state), _flat(new_state)):
                dst.copy_(src)  # after the forward's last read of dst (stream order)
        for t in _flat(static_state):
            t.zero_()  # the stream starts from a zero state, like module_step's
    box: dict[str, Any] = {"i": 0, "graph": graph}  # the graph holds its memory while the closure lives

    def step() -> None:
        i = box["i"]
        static_x.copy_(xs[i % N_INPUTS])
        graph.replay()
        box["i"] = i + 1

    run = synced(step, device)
    run.buffers = {"output": static_out, "state": static_state}  # after a step: its output and the new state
    return run


def _stateful(step_fn: Callable[[Any], Any]) -> Callable[[], None]:
    """Adapt a user's `step_fn(state) -> state` (state None at the start) to a closure."""
    box: dict[str, Any] = {"state": None}

    def step() -> None:
        box["state"] = step_fn(box["state"])

    return step


def streaming_latency(model: nn.Module | None = None, threads: int = 1, steps: int = 200, repeats: int = 5,
                      warmup: int = 50, step_fn: Callable[[Any], Any] | None = None,
                      context: Callable[[], contextlib.AbstractContextManager] | None = None,
                      cuda_graph: bool = False) -> dict:
    """Streaming step latency (ms) at batch 1 with the state carried (on the model's device;
    `cuda_graph`: replayed from a CUDA graph, graph_step).

    `model` follows SequenceModel's forward contract (`model(x (1, 1[, F]), state) -> (out, state)`);
    for any other module pass `step_fn(state) -> state` doing one step of your own (state None at
    the start). `context` (e.g. `lambda: torch.backends.mkldnn.flags(enabled=False)`) wraps the run.
    Keys: median_ms, spread_ms [min, max], medians_ms, threads, steps, repeats, warmup.
    """
    if step_fn is None and model is None:
        raise ValueError("give a model or a step_fn")
    was_training = model.training if model is not None else False
    if model is not None:
        model.eval()
    try:
        with torch_threads(threads), torch.inference_mode(), (context() if context else contextlib.nullcontext()):
            step = (_stateful(step_fn) if step_fn is not None else graph_step(model) if cuda_graph
                    else module_step(model))
            out = time_stream(step, steps, repeats, warmup)
    finally:
        if model is not None:
            model.train(was_training)
    return {**out, "threads": threads}


def throughput(model: nn.Module | None = None, threads: int = 1, batch: int = 64, seq_len: int = 128, repeats: int = 3,
               batch_fn: Callable[[], Any] | None = None,
               context: Callable[[], contextlib.AbstractContextManager] | None = None,
               clock: Callable[[], float] = time.perf_counter) -> dict:
    """Time steps per second for batch x seq_len steps from a zero state (`batch_fn()` for user modules:
    one call must process `batch` sequences of `seq_len` steps; `clock`: see time_batch).
    Keys: steps_per_s, spread_steps_per_s, seconds, repeats, threads, batch, seq_len."""
    if batch_fn is None and model is None:
        raise ValueError("give a model or a batch_fn")
    run = batch_fn if batch_fn is not None else module_batch(model, batch, seq_len)
    was_training = model.training if model is not None else False
    if model is not None:
        model.eval()
    try:
        with torch_threads(threads), torch.inference_mode(), (context() if context else contextlib.nullcontext()):
            out = time_batch(run, batch * seq_len, repeats, clock=clock)
    finally:
        if model is not None:
            model.train(was_training)
    return {**out, "threads": threads, "batch": batch, "seq_len": seq_len}
