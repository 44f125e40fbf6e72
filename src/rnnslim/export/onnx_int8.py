"""int8 ONNX step graph for LSTM, GRU and RNN models (ONNX Runtime runs it with int8 matmuls).

ORT's `quantize_dynamic` quantizes ONNX LSTM nodes (DynamicQuantizeLSTM) but leaves GRU and RNN
nodes fp32: it has no int8 kernel for them. `export_int8_onnx` therefore exports one streaming
step with the recurrence *unfused*: every layer and direction is written out from the PyTorch
equations (rnnslim.recurrent.cells) as plain MatMul / Add / Sigmoid / Tanh nodes,

    LSTM  g = x W_ih^T + h W_hh^T + b_ih + b_hh, gates reordered [i f o | g]:
          i, f, o = sigmoid(g[:3H]);  c' = f c + i tanh(g[3H:]);  h' = o tanh(c')  [h' W_hr^T]
    GRU   gx = x W_ih^T + b_ih,  gh = h W_hh^T + b_hh   (gates [r z n])
          r, z = sigmoid(gx[:2H] + gh[:2H]);  n = tanh(gx[2H:] + r * gh[2H:]);  h' = n + z (h - n)
    RNN   h' = tanh|relu(x W_ih^T + h W_hh^T + b_ih + b_hh)

(h' = n + z (h - n) is PyTorch's (1 - z) n + z h rearranged; equal to float rounding), and then
quantizes every MatMul with a constant weight through `onnxruntime.quantization.quantize_dynamic`
(op_types_to_quantize=["MatMul"], int8 weights, per output column by default): each becomes
DynamicQuantizeLinear + MatMulInteger (uint8 activations quantized per call, int8 weights,
int32 accumulation), which ORT fuses into DynamicQuantizeMatMul. The decoder (and a Linear input
projection) are exported as MatMul + Add too, so they are quantized as well (ORT's dynamic mode
has no int8 Gemm).

Embedding input: with `fold_embedding` the first layer's input product is folded into a table
T[v] = E[v] W_ih^T (+ b_ih): one Gather replaces the embedding lookup and the layer-0 input
matmul (exact in real arithmetic; chosen automatically when the table is the smaller artifact,
i.e. for character vocabularies). The gathered table (folded or the plain embedding) is stored
int8 with one scale per column: Gather on the int8 table + DequantizeLinear (axis -1).

Graph contract and layout metadata are those of rnnslim.export.onnx (inputs x, h{k}[, c{k}];
outputs y, h{k}_out[, c{k}_out]; batch dynamic), with `static_time` = True: T is 1, and
OrtStepRunner.sequence loops over time (for a bidirectional layer that is a stream of one-step
calls, as in every static-time graph, not a whole-sequence backward pass). The fp32 unfused
graph is checked against the model before quantization (max |ORT - PyTorch| <= tol, else
OnnxParityError); the int8 graph's difference from the model is measured and returned, not
bounded (it is quantization error).
"""

from __future__ import annotations

import copy
import logging
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from rnnslim.export.onnx import (
    PARITY_TOL,
    OnnxParityError,
    OrtStepRunner,
    _quiet_export,
    _run_torch,
    _write_layout,
    example_inputs,
    import_onnxruntime,
    parity_max_abs_diff,
    step_layout,
)
from rnnslim.models.sequence import refuse_front_end
from rnnslim.recurrent.cells import direction_weights
from rnnslim.recurrent.gates import CellType, cell_of_module, gate_slice
from rnnslim.utils.threads import torch_threads

# --- the unfused step as a torch module (what gets traced) -----------------------------------
def _t(w: Tensor | None) -> nn.Parameter | None:
    """A pre-transposed, contiguous fp32 copy: the exporter then writes the (in, out) matrix as
    the MatMul's initializer without a Transpose node."""
    return None if w is None else nn.Parameter(w.detach().float().t().contiguous(), requires_grad=False)


class _Direction(nn.Module):
    """One direction of one layer, one time step; weights in (in, out) layout.

    LSTM gate columns are reordered [i f o g] so one Sigmoid covers three gates. `table`
    (V, G*H) replaces the input product when the layer-0 input is folded into the embedding."""

    def __init__(self, cell: CellType, layer: nn.RNNBase, reverse: bool, table: Tensor | None = None) -> None:
        super().__init__()
        self.cell = cell
        w = direction_weights(layer, 0, reverse)
        H = layer.hidden_size
        G = w.w_ih.shape[0] // H
        if cell is CellType.LSTM:
            order = torch.cat([torch.arange(4 * H)[gate_slice(cell, g, H)] for g in ("i", "f", "o", "g")])
        else:
            order = torch.arange(G * H)
        zeros = w.w_ih.new_zeros(G * H)
        b_ih = (w.b_ih if w.b_ih is not None else zeros).detach().float()
        b_hh = (w.b_hh if w.b_hh is not None else zeros).detach().float()
        self.H = H
        self.folded = table is not None
        self.w_x = None if self.folded else _t(w.w_ih[order])
        self.table = None if table is None else nn.Parameter(table[:, order].contiguous(), requires_grad=False)
        self.w_h = _t(w.w_hh[order])
        self.w_r = _t(w.w_hr)
        if cell is CellType.GRU:  # the reset gate scales (W_hn h + b_hn): biases stay apart
            self.b_x = nn.Parameter(b_ih[order], requires_grad=False) if not self.folded else None
            self.b_h = nn.Parameter(b_hh[order], requires_grad=False)
        else:  # the folded table already holds b_ih
            b = b_hh if self.folded else b_ih + b_hh
            self.b_x, self.b_h = None, nn.Parameter(b[order].clone(), requires_grad=False)

    def input_part(self, x: Tensor | None, ids: Tensor | None) -> Tensor:
        if self.folded:
            return F.embedding(ids, self.table)
        gx = x @ self.w_x
        return gx + self.b_x if self.b_x is not None else gx

    def forward(self, x: Tensor | None, ids: Tensor | None, h: Tensor, c: Tensor | None):
        gx = self.input_part(x, ids)
        H = self.H
        if self.cell is CellType.GRU:
            gh = h @ self.w_h + self.b_h
            gx_rz, gx_n = torch.split(gx, [2 * H, H], dim=1)
            gh_rz, gh_n = torch.split(gh, [2 * H, H], dim=1)
            r, z = torch.split(torch.sigmoid(gx_rz + gh_rz), [H, H], dim=1)
            n = torch.tanh(gx_n + r * gh_n)
            return n + z * (h - n), None
        pre = gx + h @ self.w_h + self.b_h
        if self.cell is CellType.LSTM:
            sig, g = torch.split(pre, [3 * H, H], dim=1)
            i, f, o = torch.split(torch.sigmoid(sig), [H, H, H], dim=1)
            c_new = f * c + i * torch.tanh(g)
            h_new = o * torch.tanh(c_new)
            if self.w_r is not None:
                h_new = h_new @ self.w_r
            return h_new, c_new
        return (torch.relu(pre) if self.cell is CellType.RNN_RELU else torch.tanh(pre)), None


class _Layer(nn.Module):
    def __init__(self, cell: CellType, layer: nn.RNNBase, tables: list[Tensor] | None = None) -> None:
        super().__init__()
        if not isinstance(layer, nn.RNNBase) or layer.num_layers != 1 or layer.batch_first:
            raise TypeError(f"export_int8_onnx needs single-layer time-major torch recurrent layers, got {layer!r}")
        D = 2 if layer.bidirectional else 1
        self.dirs = nn.ModuleList(_Direction(cell, layer, d == 1, None if tables is None else tables[d])
                                  for d in range(D))
        self.lstm = cell is CellType.LSTM

    def forward(self, x: Tensor | None, ids: Tensor | None, state: tuple[Tensor, ...]):
        hs, cs = [], []
        for d, mod in enumerate(self.dirs):
            h, c = mod(x, ids, state[0][d], state[1][d] if self.lstm else None)
            hs.append(h)
            cs.append(c)
        stack = (lambda ts: ts[0].unsqueeze(0)) if len(hs) == 1 else (lambda ts: torch.stack(ts, 0))
        out = hs[0] if len(hs) == 1 else torch.cat(hs, 1)
        new = (stack(hs), stack(cs)) if self.lstm else (stack(hs),)
        return out, new


class _StepModel(nn.Module):
    """SequenceModel.forward at T = 1 in eval mode, flat signature: (x, *state) -> (y, *state)."""

    def __init__(self, model: nn.Module, fold: bool) -> None:
        super().__init__()
        spec = model.spec
        self.cell = model.rnn.cell
        self.kind = spec.input_kind.value
        self.readout = spec.readout.value
        self.fold = fold
        self.emb = self.in_w = self.in_b = None
        layers = list(model.rnn.layers)
        tables = None
        if self.kind == "embedding":
            E = model.embedding.weight.detach().float()
            if fold:
                tables = []
                for d in range(2 if layers[0].bidirectional else 1):
                    w = direction_weights(layers[0], 0, d == 1)
                    t = E @ w.w_ih.detach().float().t()
                    if w.b_ih is not None:
                        t = t + w.b_ih.detach().float()
                    tables.append(t)
            else:
                self.emb = nn.Parameter(E.clone(), requires_grad=False)
        elif self.kind == "linear":
            self.in_w = _t(model.input_proj.weight)
            b = model.input_proj.bias
            self.in_b = None if b is None else nn.Parameter(b.detach().float().clone(), requires_grad=False)
        self.layers = nn.ModuleList(_Layer(self.cell, lay, tables if k == 0 else None) for k, lay in enumerate(layers))
        self.dec_w = _t(model.decoder.weight)
        b = model.decoder.bias
        self.dec_b = None if b is None else nn.Parameter(b.detach().float().clone(), requires_grad=False)
        self.per_layer = 2 if self.cell is CellType.LSTM else 1

    def forward(self, x: Tensor, *flat: Tensor) -> tuple[Tensor, ...]:
        ids = inp = None
        if self.kind == "embedding":
            ids = x[0]  # (B,)
            if not self.fold:
                inp = F.embedding(ids, self.emb)
        else:
            inp = x[0]  # (B, F)
            if self.kind == "linear":
                inp = inp @ self.in_w
                if self.in_b is not None:
                    inp = inp + self.in_b
        out_state: list[Tensor] = []
        n = self.per_layer
        for k, layer in enumerate(self.layers):
            inp, new = layer(inp, ids if k == 0 else None, flat[k * n : (k + 1) * n])
            out_state.extend(new)
        y = inp @ self.dec_w
        if self.dec_b is not None:
            y = y + self.dec_b
        if self.readout == "all":
            y = y.unsqueeze(0)  # (1, B, O); "last" / "mean" of one step is the step itself
        return (y, *out_state)


# --- choices ----------------------------------------------------------------------------------
def _fold_pays(model: nn.Module) -> bool:
    """True when the folded layer-0 gate table (V x G*H*D, int8) is smaller than the embedding
    (V x E, int8) plus the layer-0 input weights (G*H*D x E, int8): small vocabularies."""
    if model.spec.input_kind.value != "embedding":
        return False
    V, E = model.embedding.weight.shape
    layer = model.rnn.layers[0]
    rows = sum(direction_weights(layer, 0, d == 1).w_ih.shape[0] for d in range(2 if layer.bidirectional else 1))
    return V * rows <= V * E + rows * E


def _check_model(model: nn.Module) -> None:
    if not (hasattr(model, "spec") and hasattr(model, "rnn")):
        raise TypeError(f"export_int8_onnx needs a SequenceModel (spec + rnn stack), got {type(model).__name__}")
    for k, layer in enumerate(model.rnn.layers):
        if not isinstance(layer, nn.RNNBase):
            raise TypeError(f"rnn.layers.{k} is a {type(layer).__name__}; export_int8_onnx exports float torch "
                            "LSTM/GRU/RNN layers and weight-only quantized ones (dequantized first)")
        cell_of_module(layer)
    for name in ("embedding", "decoder", "input_proj"):
        mod = getattr(model, name, None)
        if mod is not None and not isinstance(mod, (nn.Embedding, nn.Linear)):
            raise TypeError(f"{name} is a {type(mod).__name__}; export_int8_onnx exports float layers")


# --- post-processing of the quantized graph ----------------------------------------------------
def _quantize_gather_tables(proto) -> int:
    """Gather on a float (V, N) initializer -> Gather on an int8 copy + DequantizeLinear with one
    symmetric scale per column (axis 1). Returns the number of tables converted."""
    import onnx
    from onnx import helper, numpy_helper

    inits = {t.name: t for t in proto.graph.initializer}
    users: dict[str, int] = {}
    for node in proto.graph.node:
        for i in node.input:
            users[i] = users.get(i, 0) + 1
    new_nodes, done = [], 0
    for node in proto.graph.node:
        src = node.input[0] if node.op_type == "Gather" and node.input else None
        t = inits.get(src) if src else None
        if (t is None or t.data_type != onnx.TensorProto.FLOAT or len(t.dims) != 2 or users.get(src, 0) != 1
                or any(a.name == "axis" and a.i != 0 for a in node.attribute)):
            new_nodes.append(node)
            continue
        w = numpy_helper.to_array(t).astype(np.float32)
        scale = np.abs(w).max(axis=0) / 127.0
        scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
        q = np.clip(np.rint(w / scale), -127, 127).astype(np.int8)
        proto.graph.initializer.remove(t)
        proto.graph.initializer.extend([numpy_helper.from_array(q, src + "_int8"),
                                        numpy_helper.from_array(scale, src + "_scale"),
                                        numpy_helper.from_array(np.zeros_like(q[0]), src + "_zero_point")])
        out = node.output[0]
        gathered = out + "_int8"
        new_nodes.append(helper.make_node("Gather", [src + "_int8", node.input[1]], [gathered], node.name + "_int8",
                                          axis=0))
        new_nodes.append(helper.make_node("DequantizeLinear", [gathered, src + "_scale", src + "_zero_point"], [out],
                                          node.name + "_dequantize", axis=-1))
        done += 1
    del proto.graph.node[:]
    proto.graph.node.extend(new_nodes)
    return done


def _quantize(src: Path, dst: Path, per_channel: bool, reduce_range: bool, gather_int8: bool) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_dynamic logs a "consider pre-processing" warning on the root logger
    try:
        quantize_dynamic(str(src), str(dst), op_types_to_quantize=["MatMul"], per_channel=per_channel,
                         reduce_range=reduce_range, weight_type=QuantType.QInt8,
                         extra_options={"MatMulConstBOnly": True})
    finally:
        root.setLevel(level)
    if gather_int8:
        proto = onnx.load(str(dst), format="protobuf")
        if _quantize_gather_tables(proto):
            onnx.save(proto, str(dst), format="protobuf")


def int8_max_abs_diff(model: nn.Module, path: str | Path, steps: int = 100, seed: int = 0) -> dict:
    """|ORT int8 graph - PyTorch model| over `steps` streaming steps at batch 1 from a random state
    (each side carries its own state; random inputs); max over logits and over state, and the
    mean |diff| of the logits."""
    runner = OrtStepRunner(path, threads=1)
    layout = runner.layout
    ref = copy.deepcopy(model).eval()
    t_state = o_state = example_inputs(layout, seed=seed)[1:]
    g = np.random.default_rng(seed + 1)
    worst_y = worst_s = 0.0
    mean_y = []
    with torch_threads(1):  # batch-1 steps: one thread is fastest (and steadier on a shared machine)
        for _ in range(steps):
            x = example_inputs(layout, seed=int(g.integers(1 << 30)))[0]
            t_out = _run_torch(ref, layout, [x, *t_state])
            o_out = runner.run([x, *o_state])
            dy = np.abs(t_out[0] - o_out[0])
            worst_y = max(worst_y, float(dy.max()))
            mean_y.append(float(dy.mean()))
            worst_s = max([worst_s, *(float(np.abs(a - b).max()) for a, b in zip(t_out[1:], o_out[1:]))])
            t_state, o_state = t_out[1:], o_out[1:]
    return {"steps": steps, "logits_max_abs_diff": worst_y, "logits_mean_abs_diff": float(np.mean(mean_y)),
            "state_max_abs_diff": worst_s}


def export_int8_onnx(model: nn.Module, path: str | Path, *, opset: int = 17, per_channel: bool = True,
                     reduce_range: bool = True, fold_embedding: bool | None = None, gather_int8: bool = True,
                     tol: float = PARITY_TOL, check_steps: int = 100, fp32_path: str | Path | None = None,
                     force: bool = False) -> dict:
    """Export one streaming step of `model` as an ONNX graph with int8 MatMuls (see the module docstring)
    and return its facts. `model`: a float32 SequenceModel (LSTM, GRU or RNN cells, embedding or feature
    input); weight-only quantized layers are first replaced by float layers holding their dequantized
    weights (listed in `dequantized_layers`). Facts:

        path, bytes, opset, layout, op_types, fold_embedding, per_channel,
        fp32_unfused_bytes / parity_fp32_max_abs_diff   (the graph before quantization vs PyTorch)
        parity_max_abs_diff                              (the int8 graph's logits vs PyTorch, max over
        int8_parity {...}                                  `check_steps` streaming steps at batch 1)

    fold_embedding: None chooses by size (small vocabularies fold). gather_int8: store the gathered
    table int8 per column. reduce_range (default True): 7-bit weights. ORT's MatMulInteger on x86 CPUs
    without VNNI (AVX2 only) adds u8 x s8 products pairwise in int16 (vpmaddubsw), which saturates for
    full-range weights: a full-range graph computes wrong logits there (max |diff| 2.08 vs 0.21 allowed
    on a tiny trained GRU, on an AVX2-only AMD EPYC), and an exported file may run on any CPU. Pass
    False only for a graph that will run on VNNI or ARM CPUs. fp32_path: also keep the unfused fp32 graph (before quantization)
    there, e.g. to measure what unfusing alone costs. Raises OnnxParityError when the fp32 unfused graph
    differs from the model by more than `tol` (an export bug, not quantization error), and
    ExportDestinationError (before any work) when `path` or `fp32_path` is not a place an export may
    write (destination.py: an existing file not written by rnnslim needs `force`).
    """
    from rnnslim.export.destination import check_destination, place_file, temp_beside

    import_onnxruntime()
    if not (hasattr(model, "spec") and hasattr(model, "rnn")):
        raise TypeError(f"export_int8_onnx needs a SequenceModel (spec + rnn stack), got {type(model).__name__}")
    path = check_destination(path, "onnx-int8", model, force)
    if fp32_path is not None:
        fp32_path = check_destination(fp32_path, "onnx", model, force)
        if fp32_path == path:
            raise ValueError(f"fp32_path and path are the same file ({path})")
    source = model  # its source_path names the input files the final renames re-check
    from rnnslim.export.torch_export import float_weights_copy

    model, dequantized = float_weights_copy(model)  # weight-only layers -> torch layers of their dequantized weights
    refuse_front_end(model.spec, "export_int8_onnx")
    _check_model(model)
    bad = sorted({str(p.dtype) for p in model.parameters() if p.is_floating_point() and p.dtype != torch.float32})
    if bad:
        raise TypeError(f"export_int8_onnx exports float32 models; this one has {bad} parameters (cast it first)")
    path.parent.mkdir(parents=True, exist_ok=True)
    ref = model.eval()  # already a copy
    fold = _fold_pays(ref) if fold_embedding is None else bool(fold_embedding)
    if fold and ref.spec.input_kind.value != "embedding":
        raise ValueError("fold_embedding needs an embedding input")
    layout = replace(step_layout(ref), static_time=True)
    step = _StepModel(ref, fold).eval()
    fp32, tmp = temp_beside(path, ".fp32.tmp"), None
    try:
        tmp = temp_beside(path)
        _export_fp32(step, layout, fp32, opset)
        _write_layout(fp32, layout)
        diff = parity_max_abs_diff(ref, fp32)
        if not diff <= tol:
            raise OnnxParityError(f"unfused fp32 step graph differs from the model: max |ORT - torch| = {diff:.3g} "
                                  f"> {tol:g}")
        fp32_bytes = fp32.stat().st_size
        _quantize(fp32, tmp, per_channel, reduce_range, gather_int8)
        ops = _write_layout(tmp, layout)
        check = int8_max_abs_diff(ref, tmp, steps=check_steps)  # before the rename: a failure leaves nothing
        place_file(tmp, path, "onnx-int8", source, force)
        if fp32_path is not None:
            fp32_path.parent.mkdir(parents=True, exist_ok=True)
            place_file(fp32, fp32_path, "onnx", source, force)
    finally:
        fp32.unlink(missing_ok=True)
        if tmp is not None:
            tmp.unlink(missing_ok=True)
    d = asdict(layout)
    d["states"] = [list(s) for s in layout.states]
    return {"path": str(path), "format": "onnx-int8", "bytes": path.stat().st_size, "opset": opset, "layout": d,
            "op_types": ops, "fold_embedding": fold, "per_channel": per_channel, "reduce_range": reduce_range,
            "gather_int8": gather_int8, "dequantized_layers": dequantized, "fp32_unfused_bytes": fp32_bytes,
            "parity_fp32_max_abs_diff": diff, "parity_max_abs_diff": check["logits_max_abs_diff"],
            "int8_parity": check}


def _export_fp32(step: _StepModel, layout, path: Path, opset: int) -> None:
    """TorchScript exporter, T = 1, batch dynamic."""
    ex = example_inputs(layout, T=1, B=1)
    args = (torch.from_numpy(ex[0]), *(torch.from_numpy(a) for a in ex[1:]))
    names_in = ["x", *layout.state_names]
    names_out = ["y", *(n + "_out" for n in layout.state_names)]
    axes: dict[str, dict[int, str]] = {"x": {1: "batch"},
                                       "y": {1: "batch"} if layout.readout == "all" else {0: "batch"}}
    for n in layout.state_names:
        axes[n] = axes[n + "_out"] = {1: "batch"}
    with _quiet_export(), torch.no_grad():
        torch.onnx.export(step, args, str(path), opset_version=opset, dynamo=False, input_names=names_in,
                          output_names=names_out, dynamic_axes=axes)


__all__ = ["export_int8_onnx", "int8_max_abs_diff"]
