"""The constant side of an ONNX graph, for rnnslim.interop.onnx_import.

Exporters surround a model's recurrent nodes with glue that never touches the data's values:
initializers and Constant nodes, and small computations on the data's *shape* that build the
zero initial states (Shape -> Gather -> Unsqueeze -> Concat -> ConstantOfShape -> Slice) or
reshape targets. This module evaluates that glue with numpy. A shape may hold symbolic sizes
(a dynamic time or batch axis), so arrays here may be object arrays mixing ints and axis
labels; a tensor of zeros whose shape is symbolic is a `Zeros`, which is all an initial
state needs to be.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Zeros:
    """A tensor of zeros of a (possibly symbolic) shape: ConstantOfShape's output."""

    shape: tuple


def attributes(node) -> dict:
    """A node's attributes as Python values (tensors as numpy arrays, strings decoded)."""
    from onnx import helper, numpy_helper  # the onnx extra, loaded when an import runs

    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        if hasattr(v, "dims"):  # a TensorProto
            v = numpy_helper.to_array(v)
        elif isinstance(v, bytes):
            v = v.decode()
        elif isinstance(v, list) and v and isinstance(v[0], bytes):
            v = [s.decode() for s in v]
        out[a.name] = v
    return out


def is_zero(v) -> bool:
    """True for a Zeros or a numeric array of zeros."""
    if isinstance(v, Zeros):
        return True
    return isinstance(v, np.ndarray) and v.dtype != object and not np.any(v)


def known_ints(v) -> list[int] | None:
    """A static 0-D / 1-D value as Python ints, or None when it holds a symbolic size."""
    if not isinstance(v, np.ndarray) or v.dtype.kind not in "iu":
        return None
    return [int(x) for x in v.reshape(-1)]


def _axes(node, attrs: dict, args: list, pos: int):
    """The `axes` of Squeeze / Unsqueeze / Reduce*: an attribute (old opsets) or an input."""
    if "axes" in attrs:
        return list(attrs["axes"])
    if len(args) > pos and args[pos] is not None:
        return known_ints(args[pos])
    return None


def _slice(x: np.ndarray, args: list, attrs: dict) -> np.ndarray:
    if "starts" in attrs:  # opset < 10
        starts, ends, axes, steps = attrs["starts"], attrs["ends"], attrs.get("axes"), None
    else:
        starts, ends = known_ints(args[1]), known_ints(args[2])
        axes = known_ints(args[3]) if len(args) > 3 and args[3] is not None else None
        steps = known_ints(args[4]) if len(args) > 4 and args[4] is not None else None
    axes = list(range(len(starts))) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    index = [slice(None)] * x.ndim
    for a, s, e, st in zip(axes, starts, ends, steps):
        index[a] = slice(s, e, st)
    return x[tuple(index)]


def evaluate(node, args: list):
    """The output of one glue node whose inputs are all static (numpy arrays or Zeros), or
    raise KeyError when this module does not evaluate that op."""
    op, attrs = node.op_type, attributes(node)
    if op == "Constant":
        if "value" not in attrs:
            v = next(iter(attrs.values()))
            return np.asarray(v)
        return np.asarray(attrs["value"])
    if op == "ConstantOfShape":
        value = attrs.get("value", np.zeros(1, dtype=np.float32))
        shape = tuple(args[0].reshape(-1).tolist())
        if not np.any(value):
            return Zeros(shape)
        if all(isinstance(s, int) for s in shape):
            return np.full(shape, value.reshape(-1)[0], dtype=value.dtype)
        raise KeyError(op)
    x = args[0]
    if isinstance(x, Zeros):
        return _zeros_op(op, x, args, attrs)
    if op in ("Identity", "Dropout"):
        return x
    if op == "Shape":
        return np.asarray(x.shape[attrs.get("start", 0):attrs.get("end", None)], dtype=np.int64)
    if op == "Cast":
        from onnx import helper

        return x if x.dtype == object else x.astype(helper.tensor_dtype_to_np_dtype(attrs["to"]))
    if op == "Gather":
        return np.take(x, args[1], axis=attrs.get("axis", 0))
    if op == "Unsqueeze":
        out = x
        for a in sorted(_axes(node, attrs, args, 1)):
            out = np.expand_dims(out, a)
        return out
    if op == "Squeeze":
        axes = _axes(node, attrs, args, 1)
        return np.squeeze(x, axis=None if axes is None else tuple(axes))
    if op == "Concat":
        return np.concatenate([np.atleast_1d(a) for a in args], axis=attrs["axis"])
    if op == "Slice":
        return _slice(x, args, attrs)
    if op == "Transpose":
        return np.transpose(x, attrs.get("perm"))
    if op == "Reshape":
        shape = [d if d != 0 else x.shape[i] for i, d in enumerate(known_ints(args[1]))]
        return x.reshape(shape)
    if op == "Expand" and x.dtype != object:
        shape = args[1].reshape(-1).tolist()
        if not np.any(x):
            return Zeros(tuple(shape))
        return np.broadcast_to(x, np.broadcast_shapes(x.shape, tuple(shape))).copy()
    if op in ("Add", "Sub", "Mul", "Div") and all(isinstance(a, np.ndarray) and a.dtype != object for a in args):
        fn = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}[op]
        return fn(args[0], args[1]).astype(np.result_type(args[0], args[1]))
    raise KeyError(op)


def _zeros_op(op: str, x: Zeros, args: list, attrs: dict):
    """Ops that keep a tensor of zeros zeros (its shape is all the rest of the graph may ask)."""
    if op in ("Identity", "Cast", "Expand", "Dropout"):
        return x
    if op == "Slice" and all(isinstance(s, int) for s in x.shape):
        return Zeros(_slice(np.zeros(x.shape, dtype=np.int8), args, attrs).shape)
    if op == "Slice":  # a slice of a symbolic shape: the size is left for ORT; the values stay zero
        return x
    if op in ("Unsqueeze", "Squeeze", "Reshape", "Transpose", "Concat"):
        return x
    raise KeyError(op)
