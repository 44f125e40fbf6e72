"""Trace a user's forward with torch.fx and record every node's example value.

torch.fx rather than torch.export: symbolic_trace keeps nn.LSTM / GRU / RNN, Linear,
Embedding, norms and rnnslim's TorchContractStack as single `call_module` nodes (torch.export
decomposes an LSTM into aten ops and an unrolled or while-loop cell, which would have to be
pattern-matched back), records the user's source line of every node (for refusals), and
arguments left None in the example (`hidden=None`) become concrete_args. Data-dependent
control flow makes fx fail: that is reported as a CaptureError with the user's line.

`trace_module` runs in eval mode (dropout off, the flag fx reads in `F.dropout(x, p,
self.training)`) and puts every module's training flag back afterwards.
"""

from __future__ import annotations

import inspect
import traceback
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.fx as fx
from torch import nn

from rnnslim.capture.errors import CaptureError
from rnnslim.recurrent.torch_contract import TorchContractStack


class CaptureTracer(fx.Tracer):
    """fx tracer whose leaves are torch's own layers (nn.* modules, Sequential excepted), every
    recurrent module (also user subclasses of nn.LSTM) and rnnslim's TorchContractStack."""

    def __init__(self) -> None:
        super().__init__()
        self.record_stack_traces = True

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, (nn.RNNBase, TorchContractStack)) or super().is_leaf_module(m, qualname)


@dataclass
class Traced:
    gm: fx.GraphModule
    arg_names: list[str]  # forward's positional parameters, in order (one placeholder each)
    values: dict[fx.Node, object]  # every node's value on the example inputs


@contextmanager
def eval_mode(module: nn.Module):
    """Run `module` in eval mode and restore every submodule's training flag afterwards."""
    flags = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield module
    finally:
        for m, flag in flags:
            m.training = flag


def _user_frame(module: nn.Module, exc: BaseException) -> str:
    """'file:line (code)' of the innermost frame of `exc` inside the user's module's source file."""
    try:
        src = inspect.getsourcefile(type(module))
    except TypeError:
        return ""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == src]
    return f" at {frames[-1].filename}:{frames[-1].lineno} ({(frames[-1].line or '').strip()})" if frames else ""


def bind_arguments(module: nn.Module, example_inputs: tuple) -> tuple[list[str], dict]:
    """(names of forward's positional parameters, concrete_args for those left None or absent)."""
    params = list(inspect.signature(module.forward).parameters.values())
    if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params):
        raise CaptureError(f"{type(module).__name__}.forward takes *args / **kwargs; capture needs named "
                           "parameters (e.g. forward(self, x, hidden=None))")
    if len(example_inputs) > len(params):
        raise CaptureError(f"{len(example_inputs)} example inputs for {type(module).__name__}.forward, which takes "
                           f"{len(params)} ({', '.join(p.name for p in params)})")
    concrete = {}
    for i, p in enumerate(params):
        value = example_inputs[i] if i < len(example_inputs) else p.default
        if value is inspect.Parameter.empty:
            raise CaptureError(f"example_inputs lacks forward's argument {p.name!r} (give one example value per "
                               "positional argument)")
        if value is None or not isinstance(value, (torch.Tensor, tuple, list)):
            concrete[p.name] = value
    return [p.name for p in params], concrete


def trace_module(module: nn.Module, example_inputs: tuple) -> Traced:
    names, concrete = bind_arguments(module, example_inputs)
    args = list(example_inputs) + [concrete[n] for n in names[len(example_inputs):]]
    with eval_mode(module), torch.no_grad():
        try:
            graph = CaptureTracer().trace(module, concrete_args=concrete or None)
        except Exception as e:  # fx.proxy.TraceError, TypeError from control flow on a Proxy, ...
            raise CaptureError(f"{type(module).__name__}.forward cannot be traced with torch.fx "
                               f"({type(e).__name__}: {' '.join(str(e).split())[:200]}){_user_frame(module, e)}; "
                               "capture supports forwards without control flow on tensor values") from None
        gm = fx.GraphModule(module, graph)
        values: dict[fx.Node, object] = {}

        class Recorder(fx.Interpreter):
            def run_node(self, n):
                values[n] = out = super().run_node(n)
                return out

        Recorder(gm).run(*args)
    return Traced(gm, names, values)
