"""ONNX export of one streaming step of a SequenceModel, checked against PyTorch, and ONNX Runtime.

Graph contract (names are fixed so runners need no knowledge of the model):
    inputs   x          (T, B) int64 token ids  |  (T, B, F) float32 features
             h{k}       (D, B, P) per recurrent layer k   (P = proj_size or H, D = directions)
             c{k}       (D, B, H) per layer, LSTM only
    outputs  y          (T, B, O) logits (readout "all")  |  (B, O) (readout "last"/"mean")
             h{k}_out, c{k}_out   the new state, same shapes as the inputs
T and B are dynamic, so one file serves streaming (T = B = 1) and batch throughput; the
layout is stored in the file's metadata (key `rnnslim_step_layout`).

Exporters in torch 2.13 (verified): the TorchScript exporter (`dynamo=False`, deprecated,
fast) turns nn.LSTM/nn.GRU into ONNX LSTM/GRU nodes, which ORT's `quantize_dynamic` turns
into DynamicQuantizeLSTM (GRU nodes stay fp32: ORT has no int8 GRU). Neither exporter
handles LSTM `proj_size` (TorchScript refuses; dynamo emits an LSTM node with wrong state
shapes), so such layers are exported from the unfused reference cell; its Python loop over
time is traced, so those graphs have T fixed to 1 (`static_time` in the layout). Other
modules (compressed layers) go through TorchScript and then dynamo, whichever passes the
parity check.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import warnings
from dataclasses import asdict, dataclass, field, replace
from enum import Enum
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from rnnslim.export.destination import LAYOUT_KEY
from rnnslim.models.sequence import refuse_front_end
from rnnslim.recurrent.cells import direction_weights, run_direction
from rnnslim.recurrent.gates import CellType

PARITY_TOL = 1e-4


class Exporter(str, Enum):
    AUTO = "auto"  # TorchScript, then dynamo, first one that passes the parity check
    TORCHSCRIPT = "torchscript"
    DYNAMO = "dynamo"


class OnnxParityError(RuntimeError):
    """The exported graph does not compute what the PyTorch model computes."""


@dataclass
class StepLayout:
    """What a runner needs to feed the graph (stored as JSON in the ONNX metadata)."""

    cell: str
    input_kind: str  # "ids" or "features"
    input_size: int  # vocabulary size or feature count
    states: list[tuple[str, int, int]]  # (name, D, size) in input order
    static_time: bool  # True: T must be 1 (unfused projection layers)
    readout: str

    @property
    def state_names(self) -> list[str]:
        return [s[0] for s in self.states]


@dataclass
class OnnxExport:
    path: Path
    exporter: str
    opset: int
    layout: StepLayout
    parity_max_abs_diff: float
    op_types: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["path"] = str(self.path)
        d["layout"]["states"] = [list(st) for st in self.layout.states]  # JSON has no tuples
        return d


# --- state flattening ----------------------------------------------------------------
def flatten_state(state: list) -> list[Tensor]:
    """[(h0, c0), (h1, c1)] or [h0, h1] -> [h0, c0, h1, c1] / [h0, h1]."""
    out: list[Tensor] = []
    for s in state:
        out.extend(s if isinstance(s, (tuple, list)) else [s])
    return out


def unflatten_state(flat: list, lstm: bool) -> list:
    return [(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)] if lstm else list(flat)


def step_layout(model: nn.Module) -> StepLayout:
    spec = model.spec
    refuse_front_end(spec, "a streaming step export", activation_ok=True)
    lstm = model.rnn.cell is CellType.LSTM
    states = []
    for k, s in enumerate(model.rnn.specs):
        states.append((f"h{k}", s.directions, s.proj_size or s.hidden_size))
        if lstm:
            states.append((f"c{k}", s.directions, s.hidden_size))
    kind = "ids" if spec.input_kind.value == "embedding" else "features"
    static = any(_needs_unfused(layer) for layer in model.rnn.layers)
    return StepLayout(model.rnn.cell.value, kind, spec.input_size, states, static, spec.readout.value)


def _needs_unfused(layer: nn.Module) -> bool:
    return isinstance(layer, nn.LSTM) and layer.proj_size > 0


class _UnfusedLSTM(nn.Module):
    """nn.LSTM (one layer, any proj_size) as explicit matmuls; same forward contract."""

    def __init__(self, layer: nn.LSTM) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x: Tensor, hx: tuple[Tensor, Tensor]) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        h0, c0 = hx  # (D, B, P), (D, B, H)
        outs, hs, cs = [], [], []
        for d in range(2 if self.layer.bidirectional else 1):
            w = direction_weights(self.layer, 0, d == 1)
            y, (h, c) = run_direction(CellType.LSTM, w, x, (h0[d], c0[d]), reverse=d == 1)
            outs.append(y)
            hs.append(h)
            cs.append(c)
        return torch.cat(outs, 2), (torch.stack(hs), torch.stack(cs))


class StepGraph(nn.Module):
    """Flat-tensor signature around model(x, state) for the exporters (ONNX, torch.export)."""

    def __init__(self, model: nn.Module, lstm: bool) -> None:
        super().__init__()
        self.model, self.lstm = model, lstm

    def forward(self, x: Tensor, *flat: Tensor) -> tuple[Tensor, ...]:
        y, state = self.model(x, unflatten_state(list(flat), self.lstm))
        return (y, *flatten_state(state))


def _export_copy(model: nn.Module) -> nn.Module:
    m = copy.deepcopy(model).eval()
    for k, layer in enumerate(m.rnn.layers):
        if _needs_unfused(layer):
            m.rnn.layers[k] = _UnfusedLSTM(layer)
    return m


def example_inputs(layout: StepLayout, T: int = 1, B: int = 1, seed: int = 0) -> list[np.ndarray]:
    """Random x and random (non-zero) state in the graph's input order."""
    g = np.random.default_rng(seed)
    if layout.input_kind == "ids":
        x = g.integers(0, layout.input_size, size=(T, B), dtype=np.int64)
    else:
        x = g.standard_normal((T, B, layout.input_size), dtype=np.float32)
    states = [(0.5 * g.standard_normal((d, B, n))).astype(np.float32) for _, d, n in layout.states]
    return [x, *states]


def _run_torch(model: nn.Module, layout: StepLayout, inputs: list[np.ndarray]) -> list[np.ndarray]:
    with torch.no_grad():
        flat = [torch.from_numpy(a) for a in inputs[1:]]
        y, state = model(torch.from_numpy(inputs[0]), unflatten_state(flat, layout.cell == "lstm"))
    return [t.numpy() for t in (y, *flatten_state(state))]


def parity_max_abs_diff(model: nn.Module, path: str | Path, steps: int = 6) -> float:
    """Max |ORT - PyTorch| over logits and state for `steps` streaming steps with state carried
    from a random state, plus one call at B=3 (and T=5 unless the graph fixes T to 1)."""
    runner = OrtStepRunner(path, threads=1)
    layout = runner.layout
    inputs = example_inputs(layout)
    worst = 0.0
    t_state, o_state = inputs[1:], inputs[1:]
    g = np.random.default_rng(1)
    for _ in range(steps):
        x = example_inputs(layout, seed=int(g.integers(1 << 30)))[0]
        t_out = _run_torch(model, layout, [x, *t_state])
        o_out = runner.run([x, *o_state])
        worst = max(worst, *(float(np.abs(a - b).max()) for a, b in zip(t_out, o_out)))
        t_state, o_state = t_out[1:], o_out[1:]
    batch = example_inputs(layout, T=1 if layout.static_time else 5, B=3, seed=2)  # the dynamic axes
    worst = max(worst, *(float(np.abs(a - b).max()) for a, b in zip(_run_torch(model, layout, batch), runner.run(batch))))
    return worst


@contextlib.contextmanager
def _quiet_export():
    """The exporters warn about their own deprecation and tracing; those warnings are known."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "onnxscript", "torch.export", "torch._dynamo")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, lv in zip(loggers, levels):
            lg.setLevel(lv)


def _torch_export(graph: StepGraph, layout: StepLayout, path: Path, opset: int, dynamo: bool) -> StepLayout:
    """Export with B dynamic and T dynamic where the exporter allows it; returns the layout of the
    file. torch.export specialises time for nn.LSTM/GRU and dimensions of size 1, so the dynamo
    exporter traces at T = 1, B = 2 and its graphs have a static T = 1."""
    if dynamo:
        layout = replace(layout, static_time=True)
    ex = example_inputs(layout, T=1, B=2 if dynamo else 1)
    args = (torch.from_numpy(ex[0]), *(torch.from_numpy(a) for a in ex[1:]))
    names_in = ["x", *layout.state_names]
    names_out = ["y", *(n + "_out" for n in layout.state_names)]
    with _quiet_export():
        if dynamo:
            batch = torch.export.Dim("batch", min=1)
            shapes = ({1: batch}, tuple({1: batch} for _ in layout.states))  # forward(x, *flat)
            torch.onnx.export(graph, args, str(path), opset_version=opset, dynamo=True, input_names=names_in,
                              output_names=names_out, dynamic_shapes=shapes, external_data=False, verbose=False)
            return layout
        axes: dict[str, dict[int, str]] = {"x": {1: "batch"} if layout.static_time else {0: "time", 1: "batch"}}
        if layout.readout == "all":
            axes["y"] = dict(axes["x"])
        else:
            axes["y"] = {0: "batch"}
        for n in layout.state_names:
            axes[n] = axes[n + "_out"] = {1: "batch"}
        torch.onnx.export(graph, args, str(path), opset_version=opset, dynamo=False, input_names=names_in,
                          output_names=names_out, dynamic_axes=axes)
    return layout


def _write_layout(path: Path, layout: StepLayout) -> dict[str, int]:
    """Store the layout in the file's metadata; returns {op_type: count} of the graph."""
    import onnx

    proto = onnx.load(str(path), format="protobuf")  # whatever the file's name ends in (onnx guesses from it)
    kept = [p for p in proto.metadata_props if p.key != LAYOUT_KEY]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    entry = proto.metadata_props.add()
    entry.key, entry.value = LAYOUT_KEY, json.dumps(asdict(layout))
    onnx.save(proto, str(path), format="protobuf")
    return op_counts(proto)


def op_counts(proto) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in proto.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def read_layout(path: str | Path) -> StepLayout:
    import onnx

    proto = onnx.load(str(path), format="protobuf", load_external_data=False)
    for p in proto.metadata_props:
        if p.key == LAYOUT_KEY:
            d = json.loads(p.value)
            d["states"] = [tuple(s) for s in d["states"]]
            return StepLayout(**d)
    raise ValueError(f"{path}: no {LAYOUT_KEY} metadata; it was not written by rnnslim.export.export_step_onnx")


def export_step_onnx(model: nn.Module, path: str | Path, opset: int = 17, exporter: Exporter | str = Exporter.AUTO,
                     tol: float = PARITY_TOL, force: bool = False) -> OnnxExport:
    """Export one streaming step of a float32 SequenceModel to `path` and check it in ONNX Runtime.

    Raises OnnxParityError when the largest |ORT - PyTorch| difference exceeds `tol`, and
    ExportDestinationError (before any work) when `path` is not a place an export may write
    (destination.py: an existing file not written by rnnslim needs `force`).
    """
    from rnnslim.export.destination import check_destination, place_file, temp_beside

    if not (hasattr(model, "spec") and hasattr(model, "rnn")):
        raise TypeError(f"export_step_onnx needs a SequenceModel (spec + rnn stack), got {type(model).__name__}")
    bad = sorted({str(p.dtype) for p in model.parameters() if p.is_floating_point() and p.dtype != torch.float32})
    if bad:
        raise TypeError(f"export_step_onnx exports float32 models; this one has {bad} parameters (cast it first)")
    path = check_destination(path, "onnx", model, force)
    layout = step_layout(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    ref = copy.deepcopy(model).eval()
    graph = StepGraph(_export_copy(model), layout.cell == "lstm").eval()
    exporter = Exporter(exporter)
    tries = [False, True] if exporter is Exporter.AUTO else [exporter is Exporter.DYNAMO]
    errors = []
    tmp = temp_beside(path)  # a failed attempt never leaves a broken file at `path`
    try:
        for dynamo in tries:
            name = "dynamo" if dynamo else "torchscript"
            # the dynamo exporter implements opset >= 18 and mis-converts some ops (Split) downwards
            used_opset = max(opset, 18) if dynamo else opset
            try:
                used = _torch_export(graph, layout, tmp, used_opset, dynamo)
                ops = _write_layout(tmp, used)
                diff = parity_max_abs_diff(ref, tmp)
            except Exception as e:  # an exporter that cannot handle this model: try the next one
                first = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
                errors.append(f"{name}: {type(e).__name__}: {first}")
                continue
            if diff <= tol:
                place_file(tmp, path, "onnx", model, force)
                return OnnxExport(path, name, used_opset, used, diff, ops)
            errors.append(f"{name}: max |ORT - torch| = {diff:.3g} > {tol:g}")
    finally:
        tmp.unlink(missing_ok=True)
    raise OnnxParityError(f"no exporter produced a graph equal to the model ({path}): " + "; ".join(errors))


# --- ONNX Runtime --------------------------------------------------------------------
def import_onnxruntime():
    """onnxruntime is an optional extra (`pip install rnnslim[onnx]`)."""
    try:
        import onnxruntime
    except ImportError as e:
        raise ImportError("onnxruntime is not installed; install the extra: pip install 'rnnslim[onnx]'") from e
    return onnxruntime


def ort_session(path: str | Path, threads: int = 1):
    """A CPU InferenceSession with `threads` intra-op threads (default graph optimizations)."""
    ort = import_onnxruntime()
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3  # errors only (shape-merge warnings of the exported graphs are benign)
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


class OrtStepRunner:
    """Runs an exported step graph: `step(x, state) -> (y, state)` with numpy arrays."""

    def __init__(self, path: str | Path, threads: int = 1) -> None:
        self.path = Path(path)
        self.layout = read_layout(path)
        self.session = ort_session(path, threads)
        self.input_names = ["x", *self.layout.state_names]
        self.output_names = ["y", *(n + "_out" for n in self.layout.state_names)]

    def init_state(self, batch: int = 1) -> list[np.ndarray]:
        return [np.zeros((d, batch, n), dtype=np.float32) for _, d, n in self.layout.states]

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        return self.session.run(self.output_names, dict(zip(self.input_names, inputs)))

    def step(self, x: np.ndarray, state: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        out = self.run([x, *state])
        return out[0], out[1:]

    def sequence(self, x: np.ndarray) -> np.ndarray:
        """Whole input x (T, B[, F]) from a zero state; loops over time when T is fixed to 1.

        With a static T the per-step outputs are combined like the model's readout: all steps,
        the last one, or their mean (exact for "mean": the decoder is affine)."""
        state = self.init_state(x.shape[1])
        if not self.layout.static_time:
            return self.step(x, state)[0]
        ys = []
        for t in range(x.shape[0]):
            y, state = self.step(x[t : t + 1], state)
            ys.append(y)
        if self.layout.readout == "all":
            return np.concatenate(ys, 0)
        return ys[-1] if self.layout.readout == "last" else np.mean(ys, axis=0)


def quantize_dynamic_int8(src: str | Path, dst: str | Path) -> dict[str, int]:
    """ORT dynamic int8 (`quantize_dynamic`, default op set: LSTM, MatMul, Gather...); returns op counts."""
    import_onnxruntime()
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_dynamic logs a "consider pre-processing" warning on the root logger
    try:
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)
    return _write_layout(Path(dst), read_layout(src))
