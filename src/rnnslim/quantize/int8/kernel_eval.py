"""Run a fully integer model through the C kernel wherever it applies (evaluation, timing).

The kernel computes exactly the integers of the torch reference (SequenceModel.forward of
the integer layers), so a loss or a logit read from it is the model's own, 30-100x faster
at batch 1. Anything the kernel cannot take (a float model, a layout it does not support,
no C compiler) returns None and the caller keeps the torch path. A language model's stream
evaluation (rnnslim.tasks.charlm.stream_nll) finds it through rnnslim.tasks.extensions, where
this module registers `stream_runner` (rnnslim.quantize.int8 imports it).
"""

from __future__ import annotations

from torch import nn

from rnnslim.tasks.extensions import register_stream_runner


def is_fully_integer(model: nn.Module) -> bool:
    kinds = {getattr(type(m), "rnnslim_kind", "") for m in model.modules()}
    return any(k.startswith("int8_integer") for k in kinds)


def kernel_runner(model: nn.Module, why: list[str] | None = None):
    """An IntegerRunner for streaming `model` (step / run), or None (the reason appended to `why`).
    A bidirectional model gets None: the kernel runs it on whole sequences only (run_sequence)."""
    if not is_fully_integer(model):
        return None
    try:
        from rnnslim.quantize.int8.runner import IntegerRunner, check_integer_model

        check_integer_model(model)  # streaming: refuses bidirectional layers with the reason
        return IntegerRunner(model)
    except Exception as e:  # no compiler, unsupported layout: the torch reference runs instead
        if why is not None:
            why.append(f"{type(e).__name__}: {e}")
        return None


def stream_runner(model: nn.Module):
    """kernel_runner for a token-stream model (an embedding input), else None."""
    runner = kernel_runner(model)  # looked up at call time: tests swap kernel_runner for the torch path
    return runner if runner is not None and getattr(runner, "features", None) is None else None


register_stream_runner(stream_runner)
