"""Import an ONNX recurrent model (LSTM / GRU / RNN nodes) as an rnnslim SequenceModel.

    model = import_onnx("lm.onnx")      # SequenceModel, outputs equal to ONNX Runtime's within 1e-5

The graph is read with the `onnx` package (checked with onnx.checker) and walked node by node,
following the one data tensor from the graph's input to its output; what each node does to it
becomes a part of the model:

    Gather(table, ids)                  embedding (V, E)
    MatMul + Add, Gemm                  the input Linear (before the recurrent nodes; after an
                                        embedding it is folded into the table) or the decoder
    LSTM / GRU / RNN                    one recurrent layer (forward or bidirectional; layout 0
                                        or 1); W, R, B converted: LSTM gates i,o,f,c -> torch
                                        i,f,g,o, GRU z,r,h -> torch r,z,n (linear_before_reset=1
                                        only: with 0, ONNX applies r before the recurrent matmul),
                                        B = [Wb | Rb] -> bias_ih, bias_hh
    Gather / Slice of the last time step,
    Gather of the last layer's Y_h      readout "last"
    ReduceMean over time                readout "mean"
    Softmax / LogSoftmax at the end     ModelSpec.output_activation (drop_softmax=True leaves it out)

plus the glue exporters emit around them: Transpose, Squeeze, Reshape (merging the direction and
hidden axes, or time and batch into rows), Flatten of (batch, features), Identity, Dropout,
Cast, and Shape / Gather / Concat / ConstantOfShape / Slice / Expand computing zero initial
states (rnnslim.interop.onnx_static evaluates those). The data's axes are tracked by name, so
batch-first and time-major graphs both work. Anything else ends in a ValueError naming the node
(op_type and name). Every import ends with a parity check against ONNX Runtime (CPU) on random
inputs (onnx's reference evaluator where ORT cannot run the graph, e.g. recurrent nodes with
layout=1).

Why not onnx2torch: its latest release (1.5.15) has no converter for LSTM / GRU / RNN nodes
(ENOT-AutoDL/onnx2torch issue #136, still open), and its result would be a torch.fx module of
generic layers that would still have to be mapped onto a SequenceModel. Mapping the few node
kinds a recurrent model uses directly is shorter and gives node-named refusals.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from rnnslim.interop.assemble import ImportedModel, build_sequence_model, check_parity
from rnnslim.interop.onnx_recurrent import GATE_ORDERS, node_name, recurrent_layer
from rnnslim.interop.onnx_static import attributes, evaluate, known_ints
from rnnslim.models.sequence import InputKind, Readout, SequenceModel, apply_output_activation

MAX_BYTES = 2 << 30  # protobuf's own limit
_FEATURES, _DIRECTIONS, _UNIT = "f", "d", "u"  # axis labels besides the input's own ("a0", "a1")


@dataclass(frozen=True)
class Data:
    """The data tensor at some point of the graph: its axes by name, their sizes (None: dynamic)."""

    axes: tuple[str, ...]
    sizes: tuple[int | None, ...]
    step: int  # how many model parts existed when it was made (an older value is a branch)
    ids: bool = False  # token ids, before the embedding
    states: tuple[tuple[int, int], ...] = ()  # a Y_h: (layer, direction) per entry of its first axis


@dataclass(frozen=True)
class Unknown:
    """A static value this importer does not compute (refused if something needs it)."""

    node: str


def import_onnx(path: str | os.PathLike, drop_softmax: bool = False, check: bool = True) -> SequenceModel:
    """The SequenceModel equal to the ONNX graph in `path`.

    A final Softmax / LogSoftmax is kept as spec.output_activation (forward, the integer kernel
    and the C export return the logits; the caller applies it); `drop_softmax=True` leaves it
    out. The parity check applies it to ours either way. `check=False` skips the comparison
    with ONNX Runtime."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    if path.stat().st_size > MAX_BYTES:
        raise ValueError(f"{path}: larger than 2 GiB; rnnslim imports single-file ONNX models")
    try:
        onnx.checker.check_model(str(path))  # by path: also checks external data files beside it
        proto = onnx.load(str(path))  # onnx refuses external data outside the model's folder
    except Exception as e:  # noqa: BLE001 - protobuf / checker errors of many kinds: one line naming the file
        first = (str(e).splitlines() or [""])[0][:300]
        raise ValueError(f"{path}: not a valid ONNX model ({type(e).__name__}: {first})") from None
    walk = GraphWalk(proto)
    imported = walk.run()
    model = build_sequence_model(imported, drop_activation=drop_softmax)
    if check:
        model.import_parity = onnx_parity(path, walk, model, imported)  # max relative error
    return model


@dataclass
class GraphWalk:
    """Follows the data through one ONNX graph, filling an ImportedModel."""

    proto: object
    values: dict = field(default_factory=dict)
    model: ImportedModel | None = None
    parts: int = 0  # model parts found so far (embedding, linears, layers, readout, activation)
    affine: str | None = None  # the part a following Add adds its bias to: "input" / "decoder"
    time: str | None = None  # the input axis label that is time (bound at the first recurrent node)
    batch: str | None = None
    input_name: str = ""
    input_axes: tuple[str, ...] = ()
    input_sizes: tuple[int | None, ...] = ()
    input_dtype: object = None
    output_axes: tuple[str, ...] = ()

    def run(self) -> ImportedModel:
        graph = self.proto.graph
        for init in graph.initializer:
            from onnx import numpy_helper

            self.values[init.name] = numpy_helper.to_array(init)
        if not any(node.op_type in GATE_ORDERS for node in graph.node):
            raise ValueError("the graph has no LSTM, GRU or RNN node: rnnslim imports recurrent models (a recurrence "
                             "unrolled into per-step MatMul / Tanh nodes, as torch's dynamo exporter writes nn.RNN, "
                             "cannot be read back: export with torch.onnx.export(..., dynamo=False))")
        self._bind_input(graph)
        for node in graph.node:
            try:
                self._node(node)
            except (KeyError, IndexError, TypeError, AttributeError) as e:  # a malformed node: one clear line
                raise ValueError(f"node {node_name(node)} cannot be read ({type(e).__name__}: {e})") from None
        if len(graph.output) != 1:
            raise ValueError(f"the graph has {len(graph.output)} outputs ({', '.join(o.name for o in graph.output)}); "
                             "rnnslim imports models with one output")
        self._finish(self.values.get(graph.output[0].name), graph.output[0].name)
        return self.model

    # --- input / output ------------------------------------------------------------------
    def _bind_input(self, graph) -> None:
        from onnx import helper

        inits = {i.name for i in graph.initializer}
        inputs = [i for i in graph.input if i.name not in inits]
        if len(inputs) != 1:
            raise ValueError(f"the graph has {len(inputs)} data inputs ({', '.join(i.name for i in inputs)}); rnnslim "
                             "imports one input (token ids or features); initial states must be zeros built inside")
        inp = inputs[0]
        ttype = inp.type.tensor_type
        dtype = helper.tensor_dtype_to_np_dtype(ttype.elem_type)
        sizes = tuple((d.dim_value or None) if d.HasField("dim_value") else None for d in ttype.shape.dim)
        ids = np.issubdtype(dtype, np.integer)
        if (ids and len(sizes) != 2) or (not ids and (len(sizes) != 3 or sizes[2] is None)):
            raise ValueError(f"graph input {inp.name!r}: {dtype} of shape {sizes}; expected token ids (2-D) or float "
                             "features (3-D with a fixed feature count)")
        axes = ("a0", "a1") if ids else ("a0", "a1", _FEATURES)
        self.input_name, self.input_axes, self.input_sizes, self.input_dtype = inp.name, axes, sizes, dtype
        self.values[inp.name] = Data(axes, sizes, 0, ids=ids)
        self.model = ImportedModel(input_kind=InputKind.EMBEDDING if ids else InputKind.IDENTITY,
                                   input_size=int(sizes[2]) if not ids else 1)

    def _finish(self, out, name: str) -> None:
        if not isinstance(out, Data) or out.states:
            raise ValueError(f"graph output {name!r} is not computed from the input by the model's layers")
        if out.step != self.parts:
            raise ValueError(f"graph output {name!r} leaves out a later part of the model (the graph branches)")
        m = self.model
        if not m.layers:
            raise ValueError("the graph has no LSTM, GRU or RNN node; rnnslim imports recurrent models")
        want = {self.time, self.batch, _FEATURES} if m.readout is Readout.ALL else {self.batch, _FEATURES}
        flat = m.readout is Readout.ALL and len(out.axes) == 2 and set(out.axes[0].split("*")) == want - {_FEATURES}
        if (set(out.axes) != want and not flat) or out.axes[-1] != _FEATURES:
            raise ValueError(f"graph output {name!r} has axes {out.axes} (time={self.time}, batch={self.batch}); "
                             "expected (time, batch, features), (batch, time, features), (time * batch, features) "
                             "or (batch, features)")
        self.output_axes = out.axes

    # --- nodes -----------------------------------------------------------------------------
    def _node(self, node) -> None:
        args = [self.values.get(n) if n else None for n in node.input]
        for n, a in zip(node.input, args):
            if n and a is None:
                raise ValueError(f"node {node_name(node)}: input {n!r} is not computed before it (graph out of order)")
        if not any(isinstance(a, Data) for a in args):
            self._static(node, args)
            return
        handler = getattr(self, "_op_" + node.op_type, None)
        if handler is None:
            raise ValueError(f"node {node_name(node)} is not supported: rnnslim imports Gather (embedding) / MatMul+Add / "
                             "Gemm -> LSTM / GRU / RNN -> MatMul+Add / Gemm graphs and their exporter glue")
        outs = handler(node, args, attributes(node))
        for name, v in zip(node.output, outs if isinstance(outs, tuple) else (outs,)):
            if name:
                self.values[name] = v

    def _static(self, node, args) -> None:
        if any(isinstance(a, Unknown) for a in args):
            result = Unknown(node_name(node))
        else:
            try:
                result = evaluate(node, args)
            except Exception:  # noqa: BLE001 - not evaluated here: refused only if something needs it
                result = Unknown(node_name(node))
        for name in node.output:
            self.values[name] = result

    def _const(self, node, v, what: str) -> np.ndarray:
        if isinstance(v, Data):
            raise ValueError(f"node {node_name(node)}: its {what} is computed from the input data; rnnslim needs it "
                             "constant")
        if isinstance(v, Unknown) or not isinstance(v, np.ndarray) or v.dtype == object:
            source = v.node if isinstance(v, Unknown) else "a shape computation"
            raise ValueError(f"node {node_name(node)}: its {what} comes from {source}, which rnnslim cannot evaluate")
        return v

    def _current(self, node, d: Data) -> Data:
        if d.step != self.parts:
            raise ValueError(f"node {node_name(node)} reads the data from before a later model part (the graph branches); "
                             "rnnslim imports a chain of layers")
        return d

    def _next_part(self, d: Data, **changes) -> Data:
        self.parts += 1
        return replace(d, step=self.parts, **changes)

    def _no_final(self, node) -> None:
        if self.model.final_activation:
            raise ValueError(f"node {node_name(node)} follows the final {self.model.final_activation}; not supported")

    # relabelling glue
    def _op_Identity(self, node, args, attrs):
        return args[0]

    _op_Dropout = _op_Identity

    def _op_Cast(self, node, args, attrs):
        from onnx import helper

        d = args[0]
        to = helper.tensor_dtype_to_np_dtype(attrs["to"])
        if d.ids != np.issubdtype(to, np.integer) or (not d.ids and to != np.float32):
            raise ValueError(f"node {node_name(node)} casts the data to {to}; not supported")
        return d

    def _op_Shape(self, node, args, attrs):
        d = args[0]
        sizes = np.array([s if s is not None else a for a, s in zip(d.axes, d.sizes)], dtype=object)
        return sizes[attrs.get("start", 0):attrs.get("end", None)]

    def _op_Transpose(self, node, args, attrs):
        d = args[0]
        perm = attrs.get("perm", list(range(len(d.axes)))[::-1])
        return replace(d, axes=tuple(d.axes[p] for p in perm), sizes=tuple(d.sizes[p] for p in perm))

    def _op_Squeeze(self, node, args, attrs):
        d = args[0]
        axes = attrs.get("axes") if "axes" in attrs else (known_ints(args[1]) if len(args) > 1 and args[1] is not None
                                                         else None)
        if axes is None:
            raise ValueError(f"node {node_name(node)} squeezes without naming its axes; not supported")
        axes = {a % len(d.axes) for a in axes}
        if d.states and axes == {d.axes.index(_DIRECTIONS)} and len(d.states) == 1:
            return self._final_state(node, d, 0)
        for a in axes:
            if not (d.axes[a] == _UNIT or (d.axes[a] == _DIRECTIONS and d.sizes[a] == 1 and not d.states)):
                raise ValueError(f"node {node_name(node)} squeezes axis {a} ({d.axes[a]}); not supported")
        keep = [i for i in range(len(d.axes)) if i not in axes]
        return replace(d, axes=tuple(d.axes[i] for i in keep), sizes=tuple(d.sizes[i] for i in keep))

    def _op_Reshape(self, node, args, attrs):
        """The merge of (directions, hidden) into one feature axis, of (time, batch) into one row
        axis (the PyTorch examples LM's `decoded.view(-1, ntoken)`), or a no-op."""
        d = args[0]
        shape = known_ints(self._const(node, args[1], "target shape")) if isinstance(args[1], np.ndarray) else None
        if shape is None:
            raise ValueError(f"node {node_name(node)}: its target shape is not a constant; not supported")
        n = len(d.axes)
        lead_ok = len(shape) == n - 1 and all(s in (0, -1) or s == d.sizes[i] for i, s in enumerate(shape[:-1]))
        merged = (d.sizes[-2] or 0) * (d.sizes[-1] or 0)
        if d.axes[-2:] == (_DIRECTIONS, _FEATURES) and lead_ok and shape[-1] in (-1, merged) and not d.states:
            return replace(d, axes=d.axes[:-2] + (_FEATURES,), sizes=d.sizes[:-2] + (merged,))
        if len(shape) == n and shape.count(-1) <= 1 and all(s in (0, -1, d.sizes[i]) for i, s in enumerate(shape)):
            return d  # every other size kept, so a -1 keeps its size too
        rows = None if None in d.sizes[:2] else d.sizes[0] * d.sizes[1]
        if (n == 3 and set(d.axes[:2]) == {self.time, self.batch} and d.axes[-1] == _FEATURES and len(shape) == 2
                and shape[0] in (-1, rows) and shape[1] in (-1, d.sizes[-1]) and -1 in shape and not d.states):
            return replace(d, axes=(f"{d.axes[0]}*{d.axes[1]}", _FEATURES), sizes=(rows, d.sizes[-1]))
        raise ValueError(f"node {node_name(node)} reshapes axes {d.axes} to {shape}; rnnslim understands only merging the "
                         "direction and hidden axes, or the time and batch axes")

    def _op_Flatten(self, node, args, attrs):
        """Flatten of (batch, features) at axis 1: a no-op (Keras-to-ONNX converters write it)."""
        d = args[0]
        if len(d.axes) != 2 or attrs.get("axis", 1) % 2 != 1 or d.states:
            raise ValueError(f"node {node_name(node)} flattens axes {d.axes}; rnnslim reads only a no-op Flatten")
        return d

    # model parts
    def _op_Gather(self, node, args, attrs):
        table, index = args[0], args[1]
        axis = attrs.get("axis", 0)
        if isinstance(index, Data):
            return self._embedding(node, table, index, axis)
        d = args[0]
        idx = self._const(node, index, "index")
        if idx.size != 1:
            raise ValueError(f"node {node_name(node)} gathers {idx.size} entries; rnnslim reads only the last time step")
        axis %= len(d.axes)
        i = int(idx.reshape(-1)[0])
        if d.states:
            if d.axes[axis] != _DIRECTIONS:
                raise ValueError(f"node {node_name(node)} gathers along axis {d.axes[axis]} of a final state; not "
                             "supported")
            return self._final_state(node, d, i)
        if d.axes[axis] != self.time or not (i == -1 or (d.sizes[axis] is not None and i == d.sizes[axis] - 1)):
            raise ValueError(f"node {node_name(node)} gathers entry {i} of axis {d.axes[axis]}; rnnslim reads only the "
                             "last time step")
        return self._readout(node, d, axis, Readout.LAST, keep=idx.ndim > 0)

    def _op_Slice(self, node, args, attrs):
        d = args[0]
        if "starts" in attrs:  # opset < 10: attributes
            starts, ends, axes, steps = list(attrs["starts"]), list(attrs["ends"]), list(attrs.get("axes", [0])), [1]
        else:
            starts = known_ints(self._const(node, args[1], "starts"))
            ends = known_ints(self._const(node, args[2], "ends"))
            axes = known_ints(self._const(node, args[3], "axes")) if len(args) > 3 and args[3] is not None else [0]
            steps = known_ints(self._const(node, args[4], "steps")) if len(args) > 4 and args[4] is not None else [1]
        if len(starts) != 1 or steps != [1] or d.states:
            raise ValueError(f"node {node_name(node)} slices the data in a way rnnslim does not read (only the last step)")
        axis = axes[0] % len(d.axes)
        size = d.sizes[axis]
        last = starts[0] == -1 or (size is not None and starts[0] == size - 1)
        if d.axes[axis] != self.time or not last or ends[0] < (size or 2 ** 62):
            raise ValueError(f"node {node_name(node)} slices axis {d.axes[axis]} [{starts[0]}:{ends[0]}]; rnnslim reads "
                             "only the last time step")
        return self._readout(node, d, axis, Readout.LAST, keep=True)

    def _op_ReduceMean(self, node, args, attrs):
        d = args[0]
        axes = attrs.get("axes") if "axes" in attrs else (known_ints(args[1]) if len(args) > 1 and args[1] is not None
                                                         else None)
        if axes is None or len(axes) != 1 or d.axes[axes[0] % len(d.axes)] != self.time:
            raise ValueError(f"node {node_name(node)} averages over axes {axes}; rnnslim averages over time only")
        return self._readout(node, d, axes[0] % len(d.axes), Readout.MEAN, keep=bool(attrs.get("keepdims", 1)))

    def _readout(self, node, d: Data, axis: int, readout: Readout, keep: bool) -> Data:
        d = self._current(node, d)
        if not self.model.layers or self.model.readout is not Readout.ALL:
            raise ValueError(f"node {node_name(node)} reduces the time axis before the recurrent layers or twice")
        self._no_final(node)
        self.model.readout = readout
        axes, sizes = list(d.axes), list(d.sizes)
        if keep:
            axes[axis], sizes[axis] = _UNIT, 1
        else:
            del axes[axis], sizes[axis]
        return self._next_part(d, axes=tuple(axes), sizes=tuple(sizes))

    def _final_state(self, node, d: Data, i: int) -> Data:
        layer, direction = d.states[i]
        last = len(self.model.layers) - 1
        if layer != last or direction != 0 or self.model.layers[last].bidirectional or self.parts != d.step:
            raise ValueError(f"node {node_name(node)} reads a final state other than the last forward-only layer's "
                             f"(layer {layer}, direction {direction}); rnnslim's readout 'last' reads the last "
                             "layer's outputs at the last step")
        if self.model.readout is not Readout.ALL:
            raise ValueError(f"node {node_name(node)} reduces the time axis twice")
        self.model.readout = Readout.LAST
        rest = tuple(k for k, a in enumerate(d.axes) if a != _DIRECTIONS)
        return self._next_part(d, axes=tuple(d.axes[k] for k in rest), sizes=tuple(d.sizes[k] for k in rest), states=())

    def _op_Concat(self, node, args, attrs):
        """torch's h_n of a multi-layer module: the layers' Y_h stacked along the first axis."""
        first = args[0]
        if (not all(isinstance(a, Data) and a.states and a.axes == first.axes for a in args)
                or first.axes[attrs.get("axis", 0) % len(first.axes)] != _DIRECTIONS):
            raise ValueError(f"node {node_name(node)} concatenates the data; rnnslim reads only final states that way")
        states = tuple(s for a in args for s in a.states)
        k = first.axes.index(_DIRECTIONS)
        sizes = first.sizes[:k] + (len(states),) + first.sizes[k + 1:]
        return replace(first, states=states, sizes=sizes, step=max(a.step for a in args))

    def _embedding(self, node, table, ids: Data, axis: int) -> Data:
        w = self._const(node, table, "embedding table")
        if not ids.ids or axis != 0 or w.ndim != 2 or self.parts:
            raise ValueError(f"node {node_name(node)} gathers from the data; rnnslim reads it as an embedding only on the "
                             "input token ids")
        self.model.input_weight = torch.as_tensor(w.astype(np.float32))
        self.model.input_size = int(w.shape[0])
        self.affine = "input"
        return self._next_part(ids, axes=ids.axes + (_FEATURES,), sizes=ids.sizes + (int(w.shape[1]),), ids=False)

    def _op_MatMul(self, node, args, attrs):
        d, w = args
        if not isinstance(d, Data) or isinstance(w, Data):
            raise ValueError(f"node {node_name(node)} multiplies by the data from the left; rnnslim reads x @ W only")
        w = self._const(node, w, "weight")
        if w.ndim != 2:
            raise ValueError(f"node {node_name(node)}: a weight of shape {w.shape}; rnnslim reads 2-D Linear weights")
        return self._linear(node, d, torch.as_tensor(w.astype(np.float32)).t(), None)

    def _op_Gemm(self, node, args, attrs):
        d, w = args[0], args[1]
        if not isinstance(d, Data) or isinstance(w, Data) or attrs.get("transA", 0):
            raise ValueError(f"node {node_name(node)}: rnnslim reads Gemm as data @ W (+ C) only")
        w = torch.as_tensor(self._const(node, w, "weight").astype(np.float32))
        if w.ndim != 2:
            raise ValueError(f"node {node_name(node)}: a weight of shape {tuple(w.shape)}; Gemm needs a 2-D one")
        w = (w if attrs.get("transB", 0) else w.t()) * float(attrs.get("alpha", 1.0))  # (out, in)
        bias = None
        if len(args) > 2 and args[2] is not None:
            c = torch.as_tensor(self._const(node, args[2], "bias").astype(np.float32)).reshape(-1)
            if c.numel() not in (1, w.shape[0]):
                raise ValueError(f"node {node_name(node)}: a bias of {c.numel()} values for {w.shape[0]} outputs")
            bias = c.expand(w.shape[0]).clone() * float(attrs.get("beta", 1.0))
        return self._linear(node, d, w, bias)

    def _linear(self, node, d: Data, w: torch.Tensor, bias) -> Data:
        """y = x W^T (+ bias) on the feature axis: the input Linear, folded into the embedding,
        the decoder, or folded into the decoder."""
        d = self._current(node, d)
        self._no_final(node)
        if d.ids or d.axes[-1] != _FEATURES or d.sizes[-1] != w.shape[1]:
            raise ValueError(f"node {node_name(node)} multiplies axes {d.axes} by a ({w.shape[1]}, {w.shape[0]}) weight; "
                             "rnnslim reads Linear layers on the feature axis")
        m, b = self.model, torch.zeros(w.shape[0]) if bias is None else bias
        if not m.layers:
            if m.input_kind is InputKind.EMBEDDING:
                m.input_weight = m.input_weight @ w.t() + b  # (V, E) -> (V, out)
            elif m.input_kind is InputKind.LINEAR:
                m.input_weight, m.input_bias = w @ m.input_weight, w @ m.input_bias + b
            else:
                m.input_kind, m.input_weight, m.input_bias, m.input_size = InputKind.LINEAR, w, b, int(w.shape[1])
            self.affine = "input"
        elif m.decoder_weight is None:
            m.decoder_weight, m.decoder_bias = w, b
            self.affine = "decoder"
        else:
            m.decoder_weight, m.decoder_bias = w @ m.decoder_weight, w @ m.decoder_bias + b
        return self._next_part(d, sizes=d.sizes[:-1] + (int(w.shape[0]),))

    def _op_Add(self, node, args, attrs):
        """A constant vector added on the feature axis: the bias of the Linear just read."""
        d, c = (args[0], args[1]) if isinstance(args[0], Data) else (args[1], args[0])
        if isinstance(c, Data):
            raise ValueError(f"node {node_name(node)} adds two data tensors; rnnslim imports a chain of layers")
        c = self._const(node, c, "addend").astype(np.float32)
        d = self._current(node, d)
        if self.affine is None or d.axes[-1] != _FEATURES or c.size != d.sizes[-1] or c.shape[-1:] != (c.size,):
            raise ValueError(f"node {node_name(node)} adds a constant of shape {c.shape} where no Linear bias belongs")
        self._no_final(node)
        b, m = torch.as_tensor(c.reshape(-1)), self.model
        if self.affine == "decoder":
            m.decoder_bias = m.decoder_bias + b
        elif m.input_kind is InputKind.EMBEDDING:
            m.input_weight = m.input_weight + b
        else:
            m.input_bias = m.input_bias + b
        return d

    def _op_Softmax(self, node, args, attrs, kind: str = "softmax"):
        d = self._current(node, args[0])
        self._no_final(node)
        opset = next((o.version for o in self.proto.opset_import if o.domain in ("", "ai.onnx")), 13)
        axis = attrs.get("axis", -1 if opset >= 13 else 1) % len(d.axes)
        if not self.model.layers or axis != len(d.axes) - 1 or d.axes[-1] != _FEATURES:
            raise ValueError(f"node {node_name(node)}: a {kind} over axis {axis} of {d.axes}; rnnslim reads only a final "
                             "activation over the outputs")
        self.model.final_activation = kind
        self.affine = None
        return self._next_part(d)

    def _op_LogSoftmax(self, node, args, attrs):
        return self._op_Softmax(node, args, attrs, kind="log_softmax")

    def _op_LSTM(self, node, args, attrs):
        return self._recurrent(node, args, attrs)

    _op_GRU = _op_RNN = _op_LSTM

    def _recurrent(self, node, args, attrs):
        x = self._current(node, args[0])
        op, m = node.op_type, self.model
        self._no_final(node)
        if x.ids or x.axes[-1] != _FEATURES or m.readout is not Readout.ALL or m.decoder_weight is not None:
            raise ValueError(f"node {node_name(node)} ({op}) reads axes {x.axes}; expected the features of every step "
                             "(recurrent layers come before the readout and the decoder)")
        layout = int(attrs.get("layout", 0))
        t, b = (x.axes[0], x.axes[1]) if layout == 0 else (x.axes[1], x.axes[0])
        if (self.time, self.batch) == (None, None):
            self.time, self.batch = t, b
        if {t, b} != {"a0", "a1"} or (t, b) != (self.time, self.batch) or len(x.axes) != 3:
            raise ValueError(f"node {node_name(node)} ({op}) reads axes {x.axes} with layout {layout}; the time and batch "
                             "axes differ from the first recurrent node's")
        layer = recurrent_layer(node, op, attrs, [self._weight(node, args, k, w) for k, w in enumerate("WRB", 1)],
                                 args, x.sizes[-1])
        m.layers.append(layer)
        if not m.layers[:-1] and m.input_kind is InputKind.IDENTITY:
            m.input_size = int(x.sizes[-1])
        self.affine = None
        nd, h, k = len(layer.directions), layer.hidden_size, len(m.layers) - 1
        ts, bs = x.sizes[0], x.sizes[1]
        if layout:
            ts, bs = bs, ts
        y = Data((t, _DIRECTIONS, b, _FEATURES), (ts, nd, bs, h), 0)
        if layout:
            y = Data((b, t, _DIRECTIONS, _FEATURES), (bs, ts, nd, h), 0)
        state_axes = (_DIRECTIONS, b, _FEATURES) if not layout else (b, _DIRECTIONS, _FEATURES)
        state_sizes = (nd, bs, h) if not layout else (bs, nd, h)
        states = tuple((k, d) for d in range(nd))
        y = self._next_part(y)
        y_h = Data(state_axes, state_sizes, self.parts, states=states)
        return y, y_h, Unknown(f"{node_name(node)} Y_c (the cell state is no model output)")

    def _weight(self, node, args, pos: int, letter: str):
        if pos >= len(args) or args[pos] is None:
            return None
        return self._const(node, args[pos], f"{letter} input")





# --- parity ---------------------------------------------------------------------------------
def onnx_parity(path: Path, walk: GraphWalk, model: SequenceModel, imported: ImportedModel, seed: int = 0) -> float:
    """Run ONNX Runtime and the imported model on the same random input; ValueError unless they agree."""
    from rnnslim.export.onnx import ort_session

    rng = np.random.default_rng(seed)
    sizes = {walk.time: 7, walk.batch: 3}
    sizes.update({a: s for a, s in zip(walk.input_axes, walk.input_sizes) if s is not None})
    shape = [sizes[a] if a != _FEATURES else walk.input_sizes[-1] for a in walk.input_axes]
    if model.spec.input_kind is InputKind.EMBEDDING:
        x = rng.integers(0, model.spec.input_size, size=shape).astype(walk.input_dtype)
    else:
        x = rng.standard_normal(shape).astype(walk.input_dtype)
    try:
        theirs = ort_session(path).run(None, {walk.input_name: x})[0]
    except Exception as e:  # noqa: BLE001 - ORT's errors: one line
        theirs = _reference_run(walk.proto, walk.input_name, x)  # e.g. layout=1, which ORT's CPU kernels refuse
        if theirs is None:
            first = (str(e).splitlines() or [""])[0][:300]
            raise ValueError(f"{path}: ONNX Runtime cannot run it ({type(e).__name__}: {first})") from None
    xt = torch.as_tensor(x)
    if tuple(walk.input_axes[:2]) != (walk.time, walk.batch):
        xt = xt.transpose(0, 1)  # batch-first -> time-major
    with torch.no_grad():
        y, _ = model(xt.long() if model.spec.input_kind is InputKind.EMBEDDING else xt.float())
        y = apply_output_activation(y, imported.final_activation or "none")
    order = tuple(walk.output_axes[0].split("*")) + walk.output_axes[1:-1]  # the output's time / batch axes
    if model.spec.readout is Readout.ALL and order != (walk.time, walk.batch):
        y = y.transpose(0, 1)
    if model.spec.readout is Readout.ALL and len(walk.output_axes) == 2:  # (T * B, O) rows, as the graph writes them
        y = y.reshape(-1, y.shape[-1])
    return check_parity(y.numpy(), theirs, str(path))


def _reference_run(proto, input_name: str, x: np.ndarray):
    """The graph's output by onnx's own reference evaluator (slow, complete), or None if it fails too."""
    try:
        from onnx.reference import ReferenceEvaluator

        return ReferenceEvaluator(proto).run(None, {input_name: x})[0]
    except Exception:  # noqa: BLE001 - then the caller reports ORT's error
        return None
