"""Peer: Brevitas (AMD/Xilinx quantization-aware PyTorch library) on rnnslim's reference char models (issue 21).

    /work/peers-brevitas/bin/python benchmarks/peers/brevitas_bench.py --model charlstm-256x2 [--chars 20000]
        [--variants w8a8,w4a8,w8_wonly,w4_wonly,graph] [--no-latency]

Setup (python3.11; torch pinned to the CPU wheel rnnslim uses; about 1 min from the local mirror):
    python3.11 -m venv /work/peers-brevitas
    /work/peers-brevitas/bin/pip install -r benchmarks/peers/requirements-brevitas.txt -c /work/notes/torch-constraint.txt
(brevitas' ONNX export needs onnx and onnxoptimizer, which brevitas does not require; onnxruntime runs
the exported files.)

What Brevitas 0.13.4 offers for recurrent layers: brevitas.nn.QuantRNN and QuantLSTM, nothing for GRU
(its maintainers say the same in Xilinx/brevitas issue 1199, 2025: build a QuantGRU from QuantLSTM's parts).
QuantLSTM keeps one GateWeight module per gate and per input (input_gate_params.input_weight, ...), not
torch's stacked (4H, in) tensors; its _load_from_state_dict splits nn.LSTM's weight_ih_l{k} / weight_hh_l{k}
in torch's i,f,g,o order and sums bias_ih + bias_hh into one bias per gate, so nn.LSTM's state dict loads
into it (checked: with every quantizer None the logits match nn.LSTM to ~1e-5). num_layers > 1 works, but
QuantLSTM.forward(inp, hx, cx) takes h and c as separate arguments and reads layer l's state at
hx[2 * l + d] even when unidirectional, so a carried (L, B, H) state must be padded to (2L, B, H)
(pad_states below); without that a 2-layer model crashes on its second chunk (IndexError).

Variants (each calibrated with brevitas.graph.calibrate.calibration_mode on peer_common.calibration_stream,
8 x 1024 training characters as one stream, state carried):
    w8a8      QuantEmbedding (int8 per-tensor weights) -> QuantLSTM with its defaults (int8 per-tensor
              weights, int32 bias, int8 input/output, gate accumulators, tanh and cell state, uint8
              sigmoid: W8A8 everywhere, its integer-LSTM recipe) -> QuantLinear (int8 input, int8 per-tensor
              weights, int32 bias). Runs as fake-quant in torch (float kernels). Export: export_onnx_qcdq
              refuses a quantized LSTM cell; export_qonnx writes a QONNX file (weights kept float32 beside
              Quant nodes) that onnxruntime cannot load (qonnx custom ops): its size is the bytes, and the
              packed integer size is given beside it.
    w8a8_pc   the same with per-output-channel weight scales (Int8WeightPerChannelFloat).
    w4a8      per-channel 4-bit weights (Int8WeightPerChannelFloat with weight_bit_width=4) in the LSTM and
              the decoder, 8-bit activations as w8a8, embedding 4-bit per-tensor (QuantEmbedding takes
              per-tensor scales only).
    w8_wonly / w4_wonly  weight-only (all activation / accumulator / state quantizers None, float cell): the
              form export_onnx_qcdq accepts for an LSTM. It writes a standard ONNX LSTM op whose weights are
              int8 initializers behind DequantizeLinear (4-bit values stored in int8 with a Clip), which
              onnxruntime runs: loss, bytes and latency of those rows are the .onnx file in onnxruntime.
    graph     brevitas.graph.quantize.layerwise_quantize on the plain model (what a user runs on a whole
              model): its layer map turns nn.LSTM into QuantLSTM and nn.Linear into QuantLinear (W8A8
              per-tensor) and has no entry for nn.GRU (left float: outcome skips_recurrent) or nn.Embedding.
Brevitas' PTQ helpers beyond calibration (GPTQ / GPFQ in brevitas.graph.gpxq, bias_correction_mode) act on
QuantLinear / QuantConv layers (QuantWBIOL) only: they do not reach QuantLSTM's gate weights, so they
are not run here (they would change the decoder alone). Brevitas' fast inference path,
brevitas.export.inference.quant_inference_mode(model, cache_quant_weight=True), crashes on QuantLSTM (its
InferenceManager has no recurrent-layer handler: "'NoneType' object is not callable"; checked per row in
quant_inference_mode), so the fake-quant module re-quantizes every weight at every call: a streaming step
(one token per call) costs tens of ms, the loss streams use chunks of 1000 steps per call.

Brevitas is run with BREVITAS_JIT=1 (its own switch: the fast LSTM cell is torch.jit.scripted), about 3x
faster than eager here; the exports (and quant_inference_mode) need the eager quantizers, so they run in
a child process (--child-export) that loads the calibrated state dict. Brevitas 0.13.4's LSTMCellFn.forward (the tracing
placeholder of the float-cell ONNX export) returns outputs of width hidden_state.size(1) after the state
was unsqueezed to (1, B, H), i.e. width B: the following decoder fails to trace ("mat1 and mat2 shapes
cannot be multiplied (1x1 and HxV)"). patch_lstm_export_placeholder corrects that placeholder shape only
(the ONNX graph it emits is Brevitas' own standard LSTM node).

Loss: peer_common.nll over the first --chars test characters, one stream at batch 1, state carried
(torch_char_model.stream_logits for torch; one session.run per character for onnxruntime). Latency: a
streaming step at batch 1, 1 thread, interleaved with rnnslim's int8 C kernel (peer_common.interleaved_latency).
Writes benchmarks/results/peers_brevitas.json (merged per model).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("BREVITAS_JIT", "1")
warnings.filterwarnings("ignore")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from peer_common import (CALIBRATION_TEXT, RESULTS, attach_latency, command_line, git_commit,  # noqa: E402
                         interleaved_latency, load_reference, load_text_ids, machine, nll, now, one_line,
                         rnnslim_reference, split, calibration_stream, test_text, versions, write_result)
from torch_char_model import CharRNN, module_stepper, step_latency, stream_logits  # noqa: E402

PACKAGES = ("brevitas", "torch", "onnx", "onnxoptimizer", "onnxruntime", "numpy", "safetensors")
OUT = RESULTS / "peers_brevitas.json"
ACT_QUANTIZERS = ("io_quant", "gate_acc_quant", "sigmoid_quant", "tanh_quant", "cell_state_quant")


# ---- the model with Brevitas layers -------------------------------------------------------------------------

def pad_states(s: torch.Tensor) -> torch.Tensor:
    """(L, B, H) -> (2L, B, H) with layer l at row 2l: QuantLSTM reads hx[2 * l + d] even when unidirectional."""
    return torch.stack([s, torch.zeros_like(s)], 1).reshape(-1, *s.shape[1:])


class BrevitasCharLSTM(nn.Module):
    """CharRNN with QuantEmbedding -> QuantLSTM(num_layers) -> QuantLinear, the reference weights loaded."""

    def __init__(self, ref: CharRNN, weight_quant, act: bool, bit_width: int | None = None) -> None:
        import brevitas.nn as qnn
        from brevitas.quant import Int8ActPerTensorFloat, Int8WeightPerTensorFloat, Int32Bias

        super().__init__()
        V, H = ref.embedding.weight.shape
        L = ref.rnn.num_layers
        bits = {} if bit_width is None else {"weight_bit_width": bit_width}
        emb_quant = None if weight_quant is None else Int8WeightPerTensorFloat
        # QuantEmbedding takes per-tensor weight scales only ("Only per-tensor quantization is supported.")
        self.embedding = qnn.QuantEmbedding(V, H, weight_quant=emb_quant, **bits)
        self.embedding.load_state_dict(ref.embedding.state_dict())
        rnn_kw = {} if act else {q: None for q in (*ACT_QUANTIZERS, "bias_quant")}
        self.rnn = qnn.QuantLSTM(H, H, num_layers=L, weight_quant=weight_quant, **bits, **rnn_kw)
        sd = {k.removeprefix("rnn."): v for k, v in ref.state_dict().items() if k.startswith("rnn.")}
        self.rnn.load_state_dict(sd, strict=False)  # missing: only the activation scales calibration sets
        dec_kw = {"input_quant": Int8ActPerTensorFloat, "bias_quant": Int32Bias} if act else {}
        self.decoder = qnn.QuantLinear(H, V, bias=True, weight_quant=weight_quant, **bits, **dec_kw)
        self.decoder.load_state_dict(ref.decoder.state_dict(), strict=False)

    def forward(self, x: torch.Tensor, state=None):
        """x (T, B) -> logits (T, B, V), (h, c) each (L, B, H), as CharRNN."""
        h, c = (pad_states(state[0]), pad_states(state[1])) if state is not None else (None, None)
        y, (h, c) = self.rnn(self.embedding(x), h, c)
        return self.decoder(y), (h, c)


class StepModule(nn.Module):
    """One streaming step with explicit state, for export: (ids (1, 1), h, c (L, 1, H)) -> (logits, h, c)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, ids, h, c):
        logits, (h, c) = self.model(ids, (h, c))
        return logits, h, c


def variant_config(name: str):
    """(weight quantizer, activations quantized, weight bit width or None) of a QuantLSTM variant."""
    from brevitas.quant import Int8WeightPerChannelFloat, Int8WeightPerTensorFloat

    return {"w8a8": (Int8WeightPerTensorFloat, True, None), "w8a8_pc": (Int8WeightPerChannelFloat, True, None),
            "w4a8": (Int8WeightPerChannelFloat, True, 4), "w8_wonly": (Int8WeightPerChannelFloat, False, None),
            "w4_wonly": (Int8WeightPerChannelFloat, False, 4)}[name]


DESCRIBE = {
    "w8a8": ("Brevitas QuantLSTM W8A8 (per-tensor, its defaults)", "int8 W8A8 fake-quant", 8,
             "brevitas.nn.QuantEmbedding / QuantLSTM(num_layers) / QuantLinear(input_quant=Int8ActPerTensorFloat, "
             "bias_quant=Int32Bias), weight_quant=Int8WeightPerTensorFloat, QuantLSTM activation defaults; "
             "calibration_mode"),
    "w8a8_pc": ("Brevitas QuantLSTM W8A8 (per-channel weights)", "int8 W8A8 fake-quant", 8,
                "as w8a8 with weight_quant=Int8WeightPerChannelFloat; calibration_mode"),
    "w4a8": ("Brevitas QuantLSTM W4A8 (per-channel 4-bit weights)", "int4 weights, int8 activations, fake-quant", 4,
             "as w8a8 with weight_quant=Int8WeightPerChannelFloat, weight_bit_width=4; calibration_mode"),
    "w8_wonly": ("Brevitas QuantLSTM int8 weight-only -> ONNX QCDQ (onnxruntime)", "int8 weight-only", 8,
                 "QuantLSTM/QuantLinear/QuantEmbedding(weight_quant=Int8WeightPerChannelFloat, activation "
                 "quantizers None) -> brevitas.export.export_onnx_qcdq(opset 17) -> onnxruntime"),
    "w4_wonly": ("Brevitas QuantLSTM int4 weight-only -> ONNX QCDQ (onnxruntime)", "int4 weight-only", 4,
                 "as w8_wonly with weight_bit_width=4 -> export_onnx_qcdq(opset 17) -> onnxruntime"),
}


def count_modules(model: nn.Module) -> dict:
    """How many modules of each recurrent / linear / embedding class the model holds (float and Brevitas)."""
    out: dict = {}
    for m in model.modules():
        n = type(m).__name__
        if n in ("LSTM", "GRU", "RNN", "Linear", "Embedding", "QuantLSTM", "QuantRNN", "QuantLinear",
                 "QuantEmbedding", "_QuantLSTMLayer"):
            out[n] = out.get(n, 0) + 1
    return out


@torch.no_grad()
def calibrate(model: nn.Module, calib: np.ndarray) -> float:
    from brevitas.graph.calibrate import calibration_mode

    t0 = time.perf_counter()
    with calibration_mode(model):
        stream_logits(model, calib)
    return time.perf_counter() - t0


def packed_weight_bytes(model: nn.Module, bits: int) -> int:
    """bits/8 per weight of every 2-D weight (embedding, gate, decoder) + 4 bytes per float scale
    (per-channel: one per row; per-tensor: one) + 4 bytes per bias value: what an integer deployment of
    these weights would store."""
    total = 0
    for name, p in model.named_parameters():
        if p.dim() == 2 and name.endswith("weight"):
            total += (p.numel() * bits + 7) // 8 + 4 * p.shape[0]
        elif name.endswith("bias"):
            total += 4 * p.numel()
    return total


# ---- ONNX (QCDQ) export and onnxruntime -----------------------------------------------------------------------

def patch_lstm_export_placeholder() -> None:
    """Brevitas' LSTMCellFn.forward returns outputs (T, B, B) instead of (T, B, H) while tracing (see the
    module docstring); return zeros of the right shape. The emitted ONNX node is unchanged."""
    import brevitas.export.onnx.function as fn

    original = fn.LSTMCellFn.forward

    def forward(ctx, inp, weight_i, weight_h, bias, sequence_lens, hidden_state, cell_state, *rest):
        _, h, c = original(ctx, inp, weight_i, weight_h, bias, sequence_lens, hidden_state, cell_state, *rest)
        return torch.zeros(inp.size(0), inp.size(1), hidden_state.size(-1)), h, c
    fn.LSTMCellFn.forward = staticmethod(forward)


def export_step(model: BrevitasCharLSTM, path: Path, how: str) -> None:
    from brevitas.export import export_onnx_qcdq, export_qonnx

    L, H = model.rnn.layers.__len__(), model.embedding.weight.shape[1]
    z = torch.zeros(L, 1, H)
    kw = dict(input_names=["ids", "h", "c"], output_names=["logits", "h_out", "c_out"], dynamo=False)
    step = StepModule(copy.deepcopy(model)).eval()
    if how == "qcdq":
        export_onnx_qcdq(step, args=(torch.zeros(1, 1, dtype=torch.long), z, z), export_path=str(path),
                         opset_version=17, **kw)
    else:
        export_qonnx(step, args=(torch.zeros(1, 1, dtype=torch.long), z, z), export_path=str(path), **kw)


def onnx_contents(path: Path) -> dict:
    """Initializer bytes per dtype and the op types of an ONNX file."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(path))
    by_type: dict = {}
    for t in m.graph.initializer:
        a = numpy_helper.to_array(t)
        by_type[a.dtype.name] = by_type.get(a.dtype.name, 0) + int(a.nbytes)
    return {"initializer_bytes": by_type, "ops": sorted({n.op_type for n in m.graph.node})}


class OrtStream:
    """One session.run per character, the (L, 1, H) h and c carried by the caller."""

    def __init__(self, path: Path, layers: int, hidden: int) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads, so.log_severity_level = 1, 1, 3
        self.sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        self.shape = (layers, 1, hidden)
        self.reset()

    def reset(self) -> None:
        self.h = self.c = np.zeros(self.shape, np.float32)

    def step(self, tok: torch.Tensor | int) -> np.ndarray:
        ids = np.asarray(tok, dtype=np.int64).reshape(1, 1)
        logits, self.h, self.c = self.sess.run(None, {"ids": ids, "h": self.h, "c": self.c})
        return logits.reshape(-1)

    def logits(self, x: np.ndarray) -> np.ndarray:
        self.reset()
        return np.stack([self.step(int(t)) for t in x]).astype(np.float32)


# ---- rows ----------------------------------------------------------------------------------------------------

def base_row(variant: str, ref: CharRNN) -> dict:
    label, mode, bits, api = DESCRIBE[variant]
    return {"variant": label, "peer": "Brevitas", "api": api, "mode": mode, "bits": bits, "key": variant}


def exports_in_child(model: nn.Module, variant: str, tmp: Path, model_name: str) -> dict:
    """export_onnx_qcdq, export_qonnx and quant_inference_mode of the calibrated model, in a child process with
    BREVITAS_JIT=0 (the JIT-scripted quantizers trace neither export): {"qcdq", "qonnx", "qonnx_path",
    "quant_inference_mode"} or {"error"}."""
    torch.save(model.state_dict(), tmp / f"{variant}.pt")
    env = {**os.environ, "BREVITAS_JIT": "0"}
    p = subprocess.run([sys.executable, __file__, "--model", model_name, "--child-export", variant,
                        "--child-dir", str(tmp)], capture_output=True, text=True, env=env)
    out = tmp / f"{variant}.exports.json"
    if p.returncode != 0 or not out.exists():
        return {"error": one_line(p.stderr or p.stdout or f"exit {p.returncode}")}
    return json.loads(out.read_text())


def fake_quant_row(variant: str, ref: CharRNN, calib, x, y, tmp: Path, model_name: str, timers: dict) -> dict:
    row = base_row(variant, ref)
    wq, act, bits = variant_config(variant)
    try:
        model = BrevitasCharLSTM(ref, wq, act, bits).eval()
        row["calibration_seconds"] = round(calibrate(model, calib), 1)
        t0 = time.perf_counter()
        logits = stream_logits(model, x)
        row["eval_seconds"] = round(time.perf_counter() - t0, 1)
    except Exception as e:  # noqa: BLE001
        return {**row, "outcome": "crashed", "error": one_line(e)}
    row.update(outcome="ok", **{"loss_nats": nll(logits, y)["loss_nats"]}, modules=count_modules(model))
    packed = packed_weight_bytes(model, row["bits"])
    ex = exports_in_child(model, variant, tmp, model_name)
    row["export_onnx_qcdq"] = ex.get("qcdq", ex.get("error"))
    row["quant_inference_mode"] = ex.get("quant_inference_mode", ex.get("error"))
    if ex.get("qonnx_path"):
        what = Path(ex["qonnx_path"])
        row["export_qonnx"] = {"bytes": what.stat().st_size, **onnx_contents(what), "onnxruntime": ort_loads(what)}
        row["bytes"] = what.stat().st_size
        row["bytes_how"] = ("export_qonnx .onnx of the step model (QONNX: float32 weights + Quant nodes; "
                            "onnxruntime cannot load it, FINN-style toolflows consume it)")
    else:
        row["export_qonnx"] = f"failed: {ex.get('qonnx', ex.get('error'))}"
        row["bytes"], row["bytes_how"] = packed, "packed integer weights (formula in packed_bytes_how): no export"
    row["packed_bytes"] = packed
    row["packed_bytes_how"] = (f"{row['bits']}-bit weights packed (embedding, every gate's input and hidden weight, "
                               "decoder) + a float32 scale per output channel (per-tensor scales: fewer) + float32 biases")
    row["note"] = ("fake-quant: brevitas runs float kernels with quantize-dequantize (BREVITAS_JIT=1); "
                   "export_onnx_qcdq refuses a quantized LSTM cell, the QONNX file does not run in onnxruntime")
    timers[row["variant"]] = fake_quant_timer(model, ref.decoder.out_features)
    return row


def fake_quant_timer(model: nn.Module, vocab: int):
    """Step latency of a fake-quant module: 3 rounds x 20 steps after 5 warm-up (a step re-quantizes every
    weight, tens of ms: the default 5 x 200 steps would take minutes per round)."""
    return lambda: step_latency(module_stepper(model), vocab, steps=20, repeats=3, warmup=5)["median_ms"]


@torch.no_grad()
def inference_mode_check(model: nn.Module) -> str:
    """Whether brevitas.export.inference.quant_inference_mode(cache_quant_weight=True), Brevitas' fast
    inference path (cached quantized weights), runs the model one step."""
    from brevitas.export.inference import quant_inference_mode

    m = copy.deepcopy(model)
    try:
        with quant_inference_mode(m, cache_quant_weight=True):
            m(torch.zeros(1, 1, dtype=torch.long))
            m(torch.zeros(1, 1, dtype=torch.long))
        return "runs"
    except Exception as e:  # noqa: BLE001
        return f"crashed: {one_line(e)}"


def ort_loads(path: Path) -> str:
    try:
        OrtStream(path, 1, 1)
        return "loads"
    except Exception as e:  # noqa: BLE001
        return f"refused: {one_line(str(e).replace(str(path), path.name))}"


def weight_only_row(variant: str, ref: CharRNN, x, y, tmp: Path, timers: dict) -> dict:
    row = base_row(variant, ref)
    wq, act, bits = variant_config(variant)
    L, H = ref.rnn.num_layers, ref.rnn.hidden_size
    path = tmp / f"{variant}.qcdq.onnx"
    try:
        model = BrevitasCharLSTM(ref, wq, act, bits).eval()
        torch_logits = stream_logits(model, x[:500])
        export_step(model, path, "qcdq")
        run = OrtStream(path, L, H)
        t0 = time.perf_counter()
        logits = run.logits(x)
        row["eval_seconds"] = round(time.perf_counter() - t0, 1)
    except Exception as e:  # noqa: BLE001
        return {**row, "outcome": "crashed", "error": one_line(e)}
    row.update(outcome="ok", loss_nats=nll(logits, y)["loss_nats"], bytes=path.stat().st_size,
               bytes_how="export_onnx_qcdq .onnx of the step model (int8 initializers + DequantizeLinear, "
                         "standard ONNX LSTM node)", modules=count_modules(model), onnx=onnx_contents(path),
               packed_bytes=packed_weight_bytes(model, bits or 8),
               ort_vs_brevitas_torch_max_abs_logit_diff=float(np.abs(logits[:500] - torch_logits).max()))
    row["note"] = ("onnxruntime CPU (1 thread) runs the QCDQ file: weights are dequantized to float and the LSTM "
                   "op computes in float32" + ("; 4-bit values are stored one per int8 byte (Clip to [-8, 7])"
                                                if bits == 4 else ""))
    timers[row["variant"]] = lambda p=path: step_latency(
        lambda t, r=OrtStream(p, L, H): r.step(t), ref.decoder.out_features)["median_ms"]
    return row


def graph_quantize_row(ref: CharRNN, calib, x, y, tmp: Path, model_name: str, timers: dict) -> dict:
    """brevitas.graph.quantize.layerwise_quantize on the plain CharRNN, calibrated, run as CharRNN runs."""
    from brevitas.graph.quantize import layerwise_quantize

    cell = ref.cell
    row = {"variant": "Brevitas layerwise_quantize(model) (its default layer map)", "peer": "Brevitas",
           "api": "brevitas.graph.quantize.layerwise_quantize(model); calibration_mode", "mode": "int8 W8A8",
           "bits": 8, "key": "graph"}
    try:
        model = layerwise_quantize(copy.deepcopy(ref)).eval()
        row["modules"] = count_modules(model)
        row["calibration_seconds"] = round(calibrate(model, calib), 1)
        logits = stream_logits(model, x)
    except Exception as e:  # noqa: BLE001
        return {**row, "outcome": "does_not_run" if cell == "lstm" else "crashed", "error": one_line(e),
                "note": "nn.LSTM becomes QuantLSTM, whose forward takes (input, hx, cx) instead of nn.LSTM's "
                        "(input, (h, c)): the model's own forward passes the carried state as one tuple"
                if cell == "lstm" else ""}
    row.update(loss_nats=nll(logits, y)["loss_nats"])
    ex = exports_in_child(model, "graph", tmp, model_name)
    row["export_onnx_qcdq"] = ex.get("qcdq", ex.get("error"))
    if ex.get("qcdq_path"):
        path = Path(ex["qcdq_path"])
        row.update(bytes=path.stat().st_size, onnx=onnx_contents(path), onnxruntime=ort_loads(path),
                   bytes_how="export_onnx_qcdq .onnx of the step model (float GRU node, int8 decoder)")
    float_rnn = row["modules"].get(cell.upper(), 0)
    if float_rnn:
        row["outcome"] = "skips_recurrent"
        row["note"] = (f"layerwise_quantize has no entry for nn.{cell.upper()}: it stays float; only the decoder "
                       "(QuantLinear W8A8 per-tensor) is quantized, nn.Embedding is left float too")
    else:
        row["outcome"] = "ok"
        row["note"] = "check: a carried state reached QuantLSTM through the model's own forward"
    timers[row["variant"]] = fake_quant_timer(model, ref.decoder.out_features)
    return row


def gru_refused_row() -> dict:
    import brevitas.nn as qnn

    offered = sorted(n for n in dir(qnn) if n.startswith("Quant") and any(k in n for k in ("RNN", "LSTM", "GRU")))
    return {"variant": "Brevitas QuantGRU", "peer": "Brevitas", "api": "brevitas.nn (no QuantGRU)", "mode": "int8",
            "bits": 8, "key": "quantgru", "outcome": "refused",
            "error": f"brevitas {versions(('brevitas',))['brevitas']} has no quantized GRU layer; brevitas.nn "
                     f"offers {', '.join(offered)}",
            "note": "a GRU user would have to write the cell from QuantLinear / QuantSigmoid / QuantTanh pieces"}


# ---- main -------------------------------------------------------------------------------------------------------

def child_export(args) -> None:
    """--child-export VARIANT: load the calibrated state dict, try both exports and the inference mode."""
    ref = CharRNN.from_reference(*load_reference(args.model))
    d = Path(args.child_dir)
    if args.child_export == "graph":
        return child_export_graph(ref, d)
    model = BrevitasCharLSTM(ref, *variant_config(args.child_export)).eval()
    keys = model.load_state_dict(torch.load(d / f"{args.child_export}.pt", weights_only=True), strict=False)
    if keys.missing_keys or keys.unexpected_keys:
        raise SystemExit(f"calibrated state dict does not match: {keys}")
    out: dict = {"quant_inference_mode": inference_mode_check(model)}
    for how in ("qcdq", "qonnx"):
        path = d / f"{args.child_export}.{how}.onnx"
        try:
            export_step(model, path, how)
            out[how], out[f"{how}_path"] = "exported", str(path)
        except Exception as e:  # noqa: BLE001
            out[how] = f"refused: {one_line(e)}"
    (d / f"{args.child_export}.exports.json").write_text(json.dumps(out))


class GRUStep(nn.Module):
    """(ids (1, 1), h (L, 1, H)) -> (logits, h) of a CharRNN GRU, for export."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, ids, h):
        return self.model(ids, h)


def child_export_graph(ref: CharRNN, d: Path) -> None:
    """The layerwise_quantize'd GRU model (float nn.GRU, QuantLinear decoder) through export_onnx_qcdq."""
    from brevitas.export import export_onnx_qcdq
    from brevitas.graph.quantize import layerwise_quantize

    model = layerwise_quantize(copy.deepcopy(ref)).eval()
    model.load_state_dict(torch.load(d / "graph.pt", weights_only=True))
    path = d / "graph.qcdq.onnx"
    z = torch.zeros(ref.rnn.num_layers, 1, ref.rnn.hidden_size)
    out: dict = {}
    try:
        export_onnx_qcdq(GRUStep(model).eval(), args=(torch.zeros(1, 1, dtype=torch.long), z), export_path=str(path),
                         opset_version=17, input_names=["ids", "h"], output_names=["logits", "h_out"], dynamo=False)
        out["qcdq"], out["qcdq_path"] = "exported", str(path)
    except Exception as e:  # noqa: BLE001
        out["qcdq"] = f"refused: {one_line(e)}"
    (d / "graph.exports.json").write_text(json.dumps(out))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="charlstm-256x2")
    ap.add_argument("--chars", type=int, default=20000, help="first N test characters")
    ap.add_argument("--variants", default="w8a8,w4a8,w8_wonly,w4_wonly,graph")
    ap.add_argument("--no-latency", action="store_true")
    ap.add_argument("--calib-chars", type=int, default=0, help="smoke tests only: first N calibration characters")
    ap.add_argument("--latency-rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--child-export", help=argparse.SUPPRESS)
    ap.add_argument("--child-dir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(1)
    patch_lstm_export_placeholder()
    if args.child_export:
        return child_export(args)

    t_start, load_start = time.perf_counter(), list(os.getloadavg())
    spec, w = load_reference(args.model)
    ref_model = CharRNN.from_reference(spec, w)
    ids_all = load_text_ids(spec["vocab"])
    ref, ref_ids, ref_parity = rnnslim_reference(args.model, args.chars, no_latency=args.no_latency)
    ids = split(ids_all, "test")[: args.chars + 1]
    if not np.array_equal(ids, ref_ids):
        raise SystemExit("the test prefix read here differs from rnnslim's (split or vocabulary mismatch)")
    x, y = ids[:-1], ids[1:]
    calib = calibration_stream(split(ids_all, "train"))
    if args.calib_chars:
        calib = calib[: args.calib_chars]
    tmp = Path(tempfile.mkdtemp(prefix="peers_brevitas_"))

    float_logits = stream_logits(ref_model, x)
    k = min(len(ref_parity), len(x))
    parity = {"torch_fp32_vs_rnnslim_max_abs_logit_diff": float(np.abs(float_logits[:k] - ref_parity[:k]).max()),
              "torch_fp32_loss_nats": nll(float_logits, y)["loss_nats"]}
    rows, timers = [], {}
    if spec["cell"] == "lstm":
        import brevitas.nn as qnn

        noq = BrevitasCharLSTM(ref_model, None, False).eval()
        parity["quantlstm_quantizers_none_vs_rnnslim_max_abs_logit_diff"] = float(
            np.abs(stream_logits(noq, x[:k]) - ref_parity[:k]).max())
        parity["how"] = (f"first {k} chars, one stream from the zero state, state carried across chunks of 1000; "
                         "QuantLSTM with every quantizer None and the reference weights loaded")
        assert isinstance(noq.rnn, qnn.QuantLSTM)
        print(f"parity: {parity}", flush=True)
        for v in args.variants.split(","):
            t0 = time.perf_counter()
            if v in ("w8a8", "w8a8_pc", "w4a8"):
                row = fake_quant_row(v, ref_model, calib, x, y, tmp, args.model, timers)
            elif v in ("w8_wonly", "w4_wonly"):
                row = weight_only_row(v, ref_model, x, y, tmp, timers)
            elif v == "graph":
                row = graph_quantize_row(ref_model, calib, x, y, tmp, args.model, timers)
            else:
                raise SystemExit(f"unknown variant {v!r}")
            rows.append(row)
            print(f"{row['variant']:66s} {row['outcome']:15s} loss {row.get('loss_nats', float('nan')):.4f} "
                  f"bytes {row.get('bytes')} {row.get('error', '')} ({time.perf_counter() - t0:.0f} s)", flush=True)
    else:
        rows.append(gru_refused_row())
        rows.append(graph_quantize_row(ref_model, calib, x, y, tmp, args.model, timers))
        print(rows, flush=True)

    duel = None
    if not args.no_latency and timers:
        duel = interleaved_latency(args.model, timers, rounds=args.latency_rounds)
        attach_latency(rows, duel, "median over interleaved rounds of step_latency (onnxruntime: 5 x 200 steps "
                                   "after 50 warm-up; fake-quant torch: 3 x 20 after 5), batch 1, 1 thread")
        print(f"latency: {duel['peer_median_ms']} vs rnnslim int8 {duel['rnnslim_int8_median_ms']:.4f} ms", flush=True)
    result = {"model": args.model, "test_chars": int(len(x)), "test_text": test_text(len(x)), "parity": parity,
              "rows": rows, "rnnslim": ref, "interleaved_latency": duel, "calibration": CALIBRATION_TEXT,
              "versions": versions(PACKAGES), "brevitas_jit": os.environ.get("BREVITAS_JIT"),
              "machine": {**machine(), "load_avg_start": load_start, "load_avg_end": list(os.getloadavg())},
              "command": command_line(), "git_commit": git_commit(),
              "seconds": round(time.perf_counter() - t_start, 1), "date": now()}
    write_result(args.out, args.model, result)
    print(f"wrote {args.out} ({result['seconds']} s)", flush=True)


if __name__ == "__main__":
    main()
