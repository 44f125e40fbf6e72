"""A variant is one way of running a model that a latency table compares: the model itself,
PyTorch's own nn.LSTM/GRU (default / oneDNN off), ONNX Runtime fp32 / dynamic int8; on a
CUDA device the model and cuDNN's nn.LSTM/GRU, each also replayed from a CUDA graph.

Each variant knows how to build a streaming-step closure and a batch closure for a thread
count, plus the bytes it stores and reads per step. A variant that cannot run here (no
onnxruntime, a model the exporter cannot handle) carries a `status` saying why instead.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from torch import nn

from rnnslim.measure.latency import graph_step, module_batch, module_step


class VariantKind(str, Enum):
    MODEL = "model"
    TORCH_DEFAULT = "torch_default"
    TORCH_NO_ONEDNN = "torch_no_onednn"
    ORT_FP32 = "ort_fp32"
    ORT_INT8 = "ort_int8"
    CUDA_GRAPH = "cuda_graph"  # the model's streaming step replayed from a CUDA graph (CUDA only)
    TORCH_CUDA_GRAPH = "torch_cuda_graph"  # cuDNN nn.LSTM/GRU, the same way (CUDA only)


LABELS = {
    VariantKind.MODEL: "model",
    VariantKind.TORCH_DEFAULT: "torch nn (default)",
    VariantKind.TORCH_NO_ONEDNN: "torch nn (oneDNN off)",
    VariantKind.ORT_FP32: "ONNX Runtime fp32",
    VariantKind.ORT_INT8: "ONNX Runtime int8 dynamic",
    VariantKind.CUDA_GRAPH: "model (CUDA graph)",
    VariantKind.TORCH_CUDA_GRAPH: "torch nn (CUDA graph)",
}
# the rows a CPU table always has (unavailable ones say why); CUDA adds the graph rows
BASELINE_KINDS = (VariantKind.TORCH_DEFAULT, VariantKind.TORCH_NO_ONEDNN, VariantKind.ORT_FP32, VariantKind.ORT_INT8)
CPU_ONLY = (VariantKind.TORCH_NO_ONEDNN, VariantKind.ORT_FP32, VariantKind.ORT_INT8)
# the rows "the best torch baseline" is chosen from (the fastest at each thread count)
TORCH_KINDS = (VariantKind.TORCH_DEFAULT, VariantKind.TORCH_NO_ONEDNN, VariantKind.TORCH_CUDA_GRAPH)

Closure = Callable[[], Any]


@dataclass
class Variant:
    kind: VariantKind
    stream: Callable[[int], Closure] | None = None  # threads -> one streaming step
    batch: Callable[[int, int, int], Closure] | None = None  # (threads, batch, seq_len) -> one batch pass
    context: Callable[[], contextlib.AbstractContextManager] | None = None  # wraps the timing (oneDNN off)
    artifact_bytes: int | None = None
    bytes_per_step: int | None = None
    note: str = ""
    batch_note: str = ""  # what the batch closure runs, when it is not what `note` describes
    status: str = "ok"  # anything else: why the variant was not measured

    @property
    def label(self) -> str:
        return LABELS[self.kind]


def torch_variant(kind: VariantKind, module: nn.Module, artifact_bytes: int | None, bytes_per_step: int,
                  context=None, note: str = "") -> Variant:
    """A module with SequenceModel's forward contract; threads are set by the timing code."""
    module.eval()
    return Variant(kind, stream=lambda threads: module_step(module),
                   batch=lambda threads, b, t: module_batch(module, b, t), context=context,
                   artifact_bytes=artifact_bytes, bytes_per_step=bytes_per_step, note=note)


def graph_variant(kind: VariantKind, module: nn.Module, artifact_bytes: int | None, bytes_per_step: int | None,
                  note: str = "") -> Variant:
    """`module`'s streaming step replayed from a CUDA graph (latency.graph_step); no batch row
    (a graph is captured for one shape: the eager row's throughput stands)."""
    module.eval()
    return Variant(kind, stream=lambda threads: graph_step(module), artifact_bytes=artifact_bytes,
                   bytes_per_step=bytes_per_step, note=note or "streaming only: static input/state buffers, one replay per step")


def user_variant(step_fn: Callable[[Any], Any] | None, batch_fn: Closure | None, artifact_bytes: int | None,
                 bytes_per_step: int | None) -> Variant:
    """A user's own module timed through their callables (step_fn(state) -> state, batch_fn())."""
    def stream(threads: int) -> Closure:
        box: dict[str, Any] = {"state": None}

        def step() -> None:
            box["state"] = step_fn(box["state"])

        return step

    return Variant(VariantKind.MODEL, stream=stream if step_fn is not None else None,
                   batch=(lambda threads, b, t: batch_fn) if batch_fn is not None else None,
                   artifact_bytes=artifact_bytes, bytes_per_step=bytes_per_step,
                   note="" if batch_fn is not None else "no batch_fn given: throughput not measured")


def ort_variant(kind: VariantKind, path: Path, bytes_per_step: int, note: str = "") -> Variant:
    """An exported step graph run by ONNX Runtime with intra_op_num_threads = threads."""
    from rnnslim.export.onnx import OrtStepRunner, example_inputs

    def stream(threads: int) -> Closure:
        runner = OrtStepRunner(path, threads)
        xs = [example_inputs(runner.layout, seed=i)[0] for i in range(64)]  # (1, 1) ids or (1, 1, F)
        box: dict[str, Any] = {"state": runner.init_state(1), "i": 0}

        def step() -> None:
            i = box["i"]
            _, box["state"] = runner.step(xs[i % len(xs)], box["state"])
            box["i"] = i + 1

        return step

    def batch(threads: int, b: int, t: int) -> Closure:
        runner = OrtStepRunner(path, threads)
        x = example_inputs(runner.layout, T=t, B=b)[0]
        return lambda: runner.sequence(x)

    return Variant(kind, stream=stream, batch=batch, artifact_bytes=path.stat().st_size,
                   bytes_per_step=bytes_per_step, note=note)


def ort_int8_note(ops: dict[str, int]) -> str:
    """Which recurrent nodes quantize_dynamic turned into int8 kernels and which stayed fp32."""
    done = [f"{op} x{n}" for op, n in ops.items() if op in ("DynamicQuantizeLSTM", "MatMulInteger")]
    left = [f"{op} x{n}" for op, n in ops.items() if op in ("LSTM", "GRU", "RNN")]
    note = "int8: " + (", ".join(done) or "none")
    if left:
        note += "; still fp32: " + ", ".join(left) + (" (ORT has no int8 GRU)" if "GRU" in ops else "")
    return note


def unavailable(kind: VariantKind, why: str) -> Variant:
    return Variant(kind, status=why)
