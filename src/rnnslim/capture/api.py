"""capture(module, example_inputs): a user's recurrent nn.Module as an rnnslim SequenceModel.

    model = capture(my_lm, (ids, None))      # float SequenceModel, same function as my_lm
    model.capture_info                       # layout, activation, tensor map, parity
    view = user_view(model)                  # called like my_lm: view(ids, hidden)

The user's module is traced (trace.py), its data path walked (walk.py) and lowered into a
ModelSpec with copies of the weights (lower.py); the module itself is left as it was
(training flags restored, nothing written). The captured model runs on example_inputs
beside the user's module and a relative error above `rtol` raises CaptureError, so a
model that capture returns computes what the user's module computes.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnslim.capture.errors import CaptureError, refuse
from rnnslim.capture.lower import lower
from rnnslim.capture.trace import eval_mode, trace_module
from rnnslim.capture.values import Data, InputState, RnnCall, StateOf
from rnnslim.capture.view import user_view
from rnnslim.capture.walk import Walker
from rnnslim.models.capture_info import CaptureInfo, CaptureParity
from rnnslim.models.sequence import SequenceModel


def _returns(walker: Walker, node, value, found: list):
    """forward's result as a template of "out" / "state:k" (lists for tuples)."""
    if isinstance(value, (tuple, list)):
        return [_returns(walker, node, v, found) for v in value]
    if isinstance(value, Data):
        found.append(value)
        return "out"
    if isinstance(value, StateOf) and value.part is None:
        return f"state:{value.call.index}"
    if isinstance(value, RnnCall):
        raise refuse(node, "forward returns a recurrent module's whole (output, state) tuple; return its parts")
    raise refuse(node, f"forward returns a {type(value).__name__} value; capture supports the model's output and "
                 "whole recurrent states (h_n or (h_n, c_n))")


def _leaves(x) -> list[Tensor]:
    if isinstance(x, Tensor):
        return [x]
    if isinstance(x, (tuple, list)):
        return [t for v in x for t in _leaves(v)]
    return []


def parity(reference, captured) -> tuple[float, int]:
    """(max relative error over the output tensors, how many were compared)."""
    ref, got = _leaves(reference), _leaves(captured)
    if len(ref) != len(got) or any(a.shape != b.shape for a, b in zip(ref, got)):
        raise CaptureError(f"the captured model returns {[tuple(t.shape) for t in got]}, the module "
                           f"{[tuple(t.shape) for t in ref]}")
    worst = 0.0
    for a, b in zip(ref, got):
        a, b = a.double(), b.double()
        scale = float(a.abs().max()) if a.numel() else 0.0
        err = float((a - b).abs().max()) if a.numel() else 0.0
        worst = max(worst, err / scale if scale > 0 else err)
    return worst, len(ref)


def _capture_once(module: nn.Module, example_inputs: tuple) -> tuple[SequenceModel, CaptureInfo]:
    traced = trace_module(module, example_inputs)
    walker = Walker(traced)
    out_node = walker.run()
    found: list[Data] = []
    returns = _returns(walker, out_node, walker.sym(out_node.args[0]), found)
    if len(found) != 1:
        raise refuse(out_node, f"forward returns {len(found)} data outputs; capture supports exactly one")
    data = found[0]
    lowered = lower(data.ops, walker.max_dropout, walker.lines)
    model = lowered.model
    bind = walker.bind
    rank = traced.values[next(n for n in traced.gm.graph.nodes if n.op == "placeholder"
                              and _arg_name(walker, n) == data.source)].dim()
    input_axes = [bind.role(f"{data.source}:{i}") for i in range(rank)]
    for i, role in enumerate(input_axes):
        if role not in ("T", "B", "F"):
            raise CaptureError(f"axis {i} of argument {data.source!r} is not read as time, batch or features")
    if model.spec.input_kind.value == "embedding" and "F" in input_axes:
        raise CaptureError(f"the token ids of argument {data.source!r} have a feature axis")
    output_axes = [[bind.role(x) for x in group] for group in data.axes]
    position = {call: i for i, call in enumerate(lowered.calls)}  # walk's call index -> module on the path

    def on_path(role: str) -> str:
        if not role.startswith("state:"):
            return role
        call = int(role.split(":")[1])
        if call not in position:
            raise refuse(out_node, "forward returns the state of a recurrent module whose output does not reach the "
                         "model's output")
        return f"state:{position[call]}"

    returns = on_path(returns) if isinstance(returns, str) else _map_nested(returns, on_path)
    roles = ["data" if n == data.source else f"state:{position[walker.state_args[n]]}"
             if walker.state_args.get(n) in position else "unused" for n in traced.arg_names]
    states_given = [example_inputs[i] for i, r in enumerate(roles) if r.startswith("state") and i < len(example_inputs)]
    layout = {("B", "T"): "batch_first", ("T", "B"): "time_major"}.get(tuple(r for r in input_axes if r != "F"),
                                                                        ",".join(input_axes))
    zeros_inside = any(isinstance(walker.env.get(n), InputState) for n in traced.gm.graph.nodes)
    info = CaptureInfo(source_class=type(module).__name__, layout=layout, input_axes=input_axes,
                       output_axes=output_axes, output_activation=model.spec.output_activation, arguments=roles,
                       argument_names=traced.arg_names, returns=returns, modules=lowered.modules,
                       module_kinds=lowered.module_kinds, tensor_names=lowered.tensor_names,
                       state_input="zeros" if any(s is not None for s in states_given) else "none",
                       notes=["the captured model starts from a zero state unless a state is passed"]
                       if zeros_inside or states_given else [])
    model.capture_info = info
    return model, info


def _with_zero_state(module: nn.Module, example_inputs: tuple, model: SequenceModel, info: CaptureInfo):
    """A forward argument left None (hidden=None) is traced away; retry with a zero state in its
    place so that user_view can pass the user's state through. Returns (model, info) of the retry
    when the argument then initialises the first recurrent module, else the first capture's."""
    names = info.argument_names
    for i, role in enumerate(info.arguments):
        given = example_inputs[i] if i < len(example_inputs) else None
        if role != "unused" or given is not None:
            continue
        data = example_inputs[info.arguments.index("data")]
        b = data.shape[info.input_axes.index("B")]
        zero = user_view(model).state_out(model.rnn.init_state(b), 0)
        padded = example_inputs + (None,) * (i + 1 - len(example_inputs))
        trial = padded[:i] + (zero,) + padded[i + 1:]
        try:
            m2, info2 = _capture_once(module, trial)
        except CaptureError:
            continue
        if info2.arguments[i] == "state:0":
            note = f"argument {names[i]!r} was None in example_inputs: captured as the state of the first " \
                   "recurrent module (None: zeros)"
            info2 = info2.model_copy(update={"notes": [*info2.notes, note], "state_input": "none"})
            m2.capture_info = info2
            return m2, info2
    return model, info


def refuse_quantized(module: nn.Module) -> None:
    """CaptureError when `module` holds rnnslim's quantized layers (rnnslim.quantize: int8, integer,
    weight-only, QAT): capture reads float weights, so the float model is captured and then quantized."""
    for path, sub in module.named_modules():
        cls = type(sub)
        if getattr(cls, "rnnslim_kind", None) and cls.__module__.startswith("rnnslim.quantize"):
            raise CaptureError(f"{path or type(module).__name__} is rnnslim's quantized layer {cls.__name__}; "
                               "capture the float model, then quantize the captured one (docs/capture.md)")


def capture(module: nn.Module, example_inputs: tuple, *, rtol: float = 1e-5) -> SequenceModel:
    """A float SequenceModel computing what `module(*example_inputs)` computes (eval mode).

    example_inputs: one example per positional argument of forward (None for a state argument
    left None; a zero state is fine too). Raises CaptureError naming the operation and its
    source line for anything the SequenceModel cannot run exactly."""
    refuse_quantized(module)
    if not isinstance(example_inputs, tuple):
        example_inputs = (example_inputs,)
    model, info = _with_zero_state(module, example_inputs, *_capture_once(module, example_inputs))
    with eval_mode(module), torch.no_grad():
        reference = module(*example_inputs)
        got = user_view(model)(*example_inputs)
    err, count = parity(reference, got)
    if not err <= rtol:
        raise CaptureError(f"the captured model differs from {type(module).__name__} by a relative {err:.3g} on "
                           f"example_inputs (rtol {rtol:g}); please report the module's forward")
    model.capture_info = info.model_copy(update={"parity": CaptureParity(max_rel_error=err, rtol=rtol,
                                                                          outputs_compared=count)})
    model.history = [{"op": "capture", "source_class": type(module).__name__, "max_rel_error": err}]
    return model


def _map_nested(template, fn):
    return [_map_nested(t, fn) for t in template] if isinstance(template, list) else fn(template)


def _arg_name(walker: Walker, node) -> str:
    v = walker.env.get(node)
    return getattr(v, "name", "")
