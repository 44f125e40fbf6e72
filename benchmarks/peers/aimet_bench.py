"""Peer: Qualcomm AIMET (aimet-torch 2.42.0) QuantizationSimModel on rnnslim's reference char models (issue 21).

    /work/peers-aimet/bin/python benchmarks/peers/aimet_bench.py --model charlstm-256x2 [--chars 20000]
        [--no-latency] [--adaround-iterations 1000] [--main-python .venv/bin/python]

Setup (python3.11; about 5 min from the registries; torch stays the 2.13.0 CPU wheel):

    python3.11 -m venv /work/peers-aimet
    /work/peers-aimet/bin/pip install torch==2.13.0 numpy safetensors
    /work/peers-aimet/bin/pip install -c /work/notes/torch-constraint.txt -r benchmarks/peers/requirements-aimet.txt

aimet-torch 2.42.0 accepts torch 2.13.0 (the resolver keeps it), but it imports torchvision at import time
(aimet_torch.utils: datasets / transforms) and the torchvision 0.28.0 the registry has is the CUDA build: its
_C.so needs libtorch_cuda.so, fails to load against the CPU torch, and then `import torchvision` dies with
"RuntimeError: operator torchvision::nms does not exist". `torchvision_without_ops()` below works around it:
it declares the two operator schemas torchvision's fake-kernel registrations need (nms, qnms) before
importing it. AIMET uses torchvision only for image datasets and the RoI / NMS custom ops, none of which a
char model touches.

What AIMET 2.x does with nn.LSTM / nn.GRU (AIMET v1's QcQuantizeRecurrent is gone): QuantizationSimModel
wraps them in aimet_torch.nn.QuantizedLSTM / QuantizedGRU, which run torch's own float torch.lstm / torch.gru
on fake-quantized ("quantize-dequantize") weights, with quantizers on the module's inputs (x, h0[, c0]) and
outputs (y, h_n[, c_n]) only. The gates, and the state between the steps of one call, stay float. With the
default config: one per-tensor symmetric quantizer per weight_ih / weight_hh tensor (per-channel is only for
Conv / Gemm / MatMul), the LSTM / GRU biases quantized at the weight bit width too (the config's "bias is not
quantized" rule matches the parameter name "bias", not "bias_ih_l0"), no input quantizers (the Embedding's
output quantizer is off), uint8 asymmetric output quantizers on y, h_n and c_n. So a model streamed one
character per call (T = 1, how a deployed char model runs) has its carried state quantized to the activation
width at every step (the LSTM cell state c too); one long call (T = 1000) quantizes it only at the call's
end. Both losses are recorded: loss_nats is the streaming one (T = 1), loss_nats_sequence_t1000 the other.
AdaRound (AdaroundSupportedModules = Conv2d, ConvTranspose2d, Linear) and Sequential MSE (SUPPORTED_MODULES =
Linear, Conv2d) skip the recurrent layer without a message: they optimize the decoder only.

Variants (all calibrated on peer_common.calibration_stream, 8 x 1024 training characters, state carried, one
character per call: the state quantizers see every step's state, as they will when streaming):
    W8A8             QuantizationSimModel(default_param_bw=8, default_output_bw=8), default config
    W4A16            default_param_bw=4, default_output_bw=16, default config (per-tensor 4-bit LSTM weights)
    W4A16 best       the best weight-only 4-bit the v2 API gives: per-output-channel 4-bit quantizers placed on
                     the recurrent weights by hand (QuantizeDequantize(shape=(G*H, 1))), the recurrent biases'
                     4-bit quantizers removed (float, as the config means them to be), Sequential MSE
                     (apply_seq_mse) on the decoder
    AdaRound         Adaround.apply_adaround(default_param_bw=4) then the "best" sim with its frozen encodings:
                     outcome skips_recurrent (it rounds the decoder only), with the decoder-only effect measured
    ONNX exports     aimet_torch.onnx.export(prequantize_constants=True): a QDQ ONNX whose weights are stored as
                     int8 (int4 at opset 21) with DequantizeLinear, run in onnxruntime one character per call;
                     sim.onnx.export: a float ONNX + an encodings JSON (for Qualcomm's QNN converter; onnxruntime
                     ignores the encodings and runs it float)
Evaluation runs the sim with its quantized weights computed once (QuantizationSimModel's own
_apply_qdq_to_model_parameters, the step its export uses, with the weight quantizers then left out): the same
logits as sim.model (checked on the first 200 characters, max |diff| recorded), 3x fewer operations per step.
The W4 variants' activation quantizers take the W8A8 sim's calibrated ranges (min-max: the range does not
depend on the bit width; every quantizer passes its input through while calibrating, so each sim would observe
the same float tensors); their weight encodings are computed from their own weights.
Latency: sim.model as a user runs it (fake-quant: float kernels plus quantize-dequantize ops), and the ONNX
files in onnxruntime (1 thread), one character per call, interleaved with rnnslim's int8 C kernel.
Writes benchmarks/results/peers_aimet.json (merged per model) in peer_common's row schema.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import logging
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402
import torch  # noqa: E402
from peer_common import (CALIBRATION_TEXT, RESULTS, attach_latency, calibration_stream, command_line,  # noqa: E402
                         git_commit, interleaved_latency, load_reference, load_text_ids, machine, nll, now, one_line,
                         rnnslim_reference, split, test_text, versions, write_result)
from torch_char_model import CharRNN, module_stepper, step_latency, stream_logits  # noqa: E402

PACKAGES = ("aimet-torch", "torch", "torchvision", "onnx", "onnxruntime", "numpy", "safetensors")
OUT = RESULTS / "peers_aimet.json"
PEER = "AIMET"


def torchvision_without_ops() -> None:
    """Let the CUDA torchvision wheel import against the CPU torch (see the module docstring)."""
    lib = torch.library.Library("torchvision", "DEF")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    torchvision_without_ops.lib = lib  # keep the library (and its definitions) alive
    import torchvision  # noqa: F401


# ---- running a sim one character per call ---------------------------------------------------------------

def zero_state(spec: dict):
    z = torch.zeros(spec["num_layers"], 1, spec["hidden_size"])  # (layers, B=1, H)
    return (z, z.clone()) if spec["cell"] == "lstm" else z


@torch.no_grad()
def stream_t1(model, x: np.ndarray, state=None, keep: bool = True):
    """(logits (T, V) float32 or None, final state): one call per character (T = 1), the state carried."""
    out = []
    for t in torch.as_tensor(x, dtype=torch.long).reshape(-1, 1, 1):  # (T, 1, 1)
        logits, state = model(t, state)
        if keep:
            out.append(logits[0, 0].float())
    return (torch.stack(out).numpy() if keep else None), state


@contextlib.contextmanager
def without_weight_quantizers(model):
    """Every quantized module's parameter quantizers left out (restored on exit)."""
    saved = []
    for mod in model.modules():
        for k, q in getattr(mod, "param_quantizers", {}).items():
            if q is not None:
                saved.append((mod, k, q))
                mod.param_quantizers[k] = None
    try:
        yield
    finally:
        for mod, k, q in saved:
            mod.param_quantizers[k] = q


@contextlib.contextmanager
def weights_quantized_once(sim_model):
    """The sim with its weights replaced by their quantize-dequantized values (AIMET's own export step) and the
    weight quantizers left out: the same forward, without re-quantizing every weight at every step."""
    from aimet_torch.quantsim import QuantizationSimModel
    with QuantizationSimModel._apply_qdq_to_model_parameters(sim_model), without_weight_quantizers(sim_model):
        yield


def calibrate_streaming(sim, calib: np.ndarray) -> None:
    """compute_encodings over the calibration stream one character per call, state carried. The weight
    quantizers observe the weights on the first call (they are the same at every call); the rest runs without
    them (while calibrating, every quantizer passes its input through, so the forward is the same)."""
    def forward(model):
        _, state = stream_t1(model, calib[:1], keep=False)
        with without_weight_quantizers(model):
            stream_t1(model, calib[1:], state, keep=False)
    sim.compute_encodings(forward)


def take_activation_ranges(sim, calibrated) -> None:
    """Initialise every quantizer of `sim` with a one-character pass, then give its activation quantizers the
    ranges of the same-named quantizers of `calibrated` (same model, other bit widths)."""
    from aimet_torch.quantization.base import QuantizerBase
    sim.compute_encodings(lambda m: stream_t1(m, np.zeros(1, np.int64), keep=False))
    src = dict(calibrated.model.named_modules())
    for name, q in sim.model.named_modules():
        if isinstance(q, QuantizerBase) and ".param_quantizers." not in name and name in src:
            s = src[name]
            q.set_range(s.get_min().detach().clone(), s.get_max().detach().clone())


def quantizer_census(sim_model) -> dict:
    """What quantizers AIMET placed: per quantized module, its parameter quantizers (bits, symmetric, shape) and
    its input / output quantizers (bits or None)."""
    def desc(q):
        return None if q is None else {"bits": q.bitwidth, "symmetric": bool(q.symmetric), "shape": list(q.shape)}
    out = {}
    for name, mod in sim_model.named_modules():
        if hasattr(mod, "param_quantizers"):
            out[name] = {"type": type(mod).__name__,
                         "params": {k: desc(q) for k, q in mod.param_quantizers.items()},
                         "inputs": [None if q is None else q.bitwidth for q in mod.input_quantizers],
                         "outputs": [None if q is None else q.bitwidth for q in mod.output_quantizers]}
    rnn = out.get("rnn", {})
    weights = [k for k, v in rnn.get("params", {}).items() if k.startswith("weight") and v]
    out["recurrent_summary"] = (f"{rnn.get('type')}: {len(weights)} weight quantizers "
                                f"({', '.join(sorted({str(rnn['params'][k]['shape']) for k in weights}))} shape), "
                                f"{sum(1 for k, v in rnn.get('params', {}).items() if k.startswith('bias') and v)} bias "
                                f"quantizers, inputs {rnn.get('inputs')}, outputs {rnn.get('outputs')}; gates and the "
                                f"state inside one call run float (torch.{'lstm' if 'LSTM' in str(rnn.get('type')) else 'gru'})")
    return out


def per_channel_recurrent_weights(sim, bits: int, drop_bias: bool = True) -> None:
    """The recurrent weights' quantizers replaced by per-output-channel ones (one scale per gate row, (G*H, 1)),
    the recurrent biases' quantizers removed, the embedding's quantizer per row (V, 1)."""
    from aimet_torch.quantization.affine import QuantizeDequantize
    emb = sim.model.embedding
    emb.param_quantizers["weight"] = QuantizeDequantize(shape=(emb.weight.shape[0], 1), bitwidth=bits, symmetric=True)
    rnn = sim.model.rnn
    for k in list(rnn.param_quantizers.keys()):
        p = getattr(rnn, k)
        if k.startswith("weight"):
            rnn.param_quantizers[k] = QuantizeDequantize(shape=(p.shape[0], 1), bitwidth=bits, symmetric=True)
        elif drop_bias:
            rnn.param_quantizers[k] = None


# ---- evaluation of one sim ----------------------------------------------------------------------------------

def sim_losses(sim, test: np.ndarray, check_chars: int = 100) -> dict:
    """Streaming (T = 1) loss with the weights quantized once, the check that it equals sim.model's logits,
    and the loss of one call per 1000 characters."""
    x, y = test[:-1], test[1:]
    plain, _ = stream_t1(sim.model, x[:check_chars])
    with weights_quantized_once(sim.model):
        logits, _ = stream_t1(sim.model, x)
    seq = stream_logits(sim.model, x)
    return {"loss_nats": nll(logits, y)["loss_nats"], "loss_nats_sequence_t1000": nll(seq, y)["loss_nats"],
            "check_max_abs_logit_diff_vs_sim_model": float(np.abs(plain - logits[:check_chars]).max()),
            "check_chars": check_chars}


class OrtStream:
    """An exported ONNX (ids (1, 1), state) -> (logits, new state) in onnxruntime, 1 thread, state carried."""

    def __init__(self, path: Path, spec: dict) -> None:
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = 1, 1
        self.sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        self.names = state_names(spec)
        z = zero_state(spec)
        self.zero = [s.numpy() for s in (z if isinstance(z, tuple) else (z,))]
        self.state = list(self.zero)

    def step(self, tok) -> np.ndarray:
        r = self.sess.run(None, {"ids": np.asarray(tok, np.int64).reshape(1, 1), **dict(zip(self.names, self.state))})
        self.state = r[1:]
        return r[0].reshape(-1)

    def logits(self, x: np.ndarray) -> np.ndarray:
        self.state = list(self.zero)
        return np.stack([self.step(t) for t in x])


def state_names(spec: dict) -> list[str]:
    return ["h0", "c0"] if spec["cell"] == "lstm" else ["h0"]


def export_args(spec: dict) -> dict:
    dummy = torch.zeros(1, 1, dtype=torch.long)
    return {"args": (dummy, zero_state(spec)), "input_names": ["ids", *state_names(spec)],
            "output_names": ["logits", *[n.replace("0", "1") for n in state_names(spec)]], "dynamo": False}


def ops_of(path: Path) -> dict:
    import onnx
    m = onnx.load(str(path))
    ops: dict = {}
    for n in m.graph.node:
        ops[n.op_type] = ops.get(n.op_type, 0) + 1
    weights = {i.name: onnx.TensorProto.DataType.Name(i.data_type) for i in m.graph.initializer
               if i.name.startswith("rnn.weight")}
    return {"ops": ops, "recurrent_weight_dtypes": weights}


# ---- the variants --------------------------------------------------------------------------------------------

def base_row(variant: str, api: str, mode: str, bits: int) -> dict:
    return {"variant": variant, "peer": PEER, "api": api, "mode": mode, "bits": bits, "outcome": "ok", "error": None,
            "loss_nats": None, "bytes": None, "bytes_how": None, "latency": None, "note": None}


def failed(row: dict, e: BaseException, outcome: str = "crashed") -> dict:
    row.update(outcome=outcome, error=one_line(e))
    print(f"{row['variant']:55s} {outcome}: {row['error']}", flush=True)
    return row


def show(row: dict) -> None:
    loss = row.get("loss_nats")
    print(f"{row['variant']:55s} {row['outcome']:16s} loss {loss if loss is None else round(loss, 5)}  "
          f"seq {row.get('loss_nats_sequence_t1000') and round(row['loss_nats_sequence_t1000'], 5)}  "
          f"{row.get('bytes')} B {row.get('error') or ''}", flush=True)


def qdq_export(sim, spec: dict, path: Path, opset: int | None = None) -> dict:
    import aimet_torch.onnx
    kw = export_args(spec)
    if opset:
        kw["opset_version"] = opset
    aimet_torch.onnx.export(sim.model, kw.pop("args"), str(path), prequantize_constants=True, **kw)
    return {"bytes": path.stat().st_size, **ops_of(path)}


def ort_row(row: dict, path: Path, spec: dict, test: np.ndarray, ort_chars: int, timers: dict) -> None:
    run = OrtStream(path, spec)
    n = min(ort_chars, len(test) - 1)
    row["loss_nats"] = nll(run.logits(test[:n]), test[1 : n + 1])["loss_nats"]
    row["loss_chars"] = n
    timers[row["variant"]] = lambda: step_latency(lambda t: run.step(t.numpy()), len(spec["vocab"]), steps=100,
                                                  repeats=3, warmup=20)["median_ms"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="charlstm-256x2")
    ap.add_argument("--chars", type=int, default=20000, help="first N test characters")
    ap.add_argument("--ort-chars", type=int, default=None, help="characters for the onnxruntime losses (default --chars)")
    ap.add_argument("--adaround-iterations", type=int, default=1000)
    ap.add_argument("--no-latency", action="store_true")
    ap.add_argument("--latency-rounds", type=int, default=3)
    ap.add_argument("--main-python", default=str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "python"))
    ap.add_argument("--calib-chars", type=int, default=None, help=argparse.SUPPRESS)  # smoke tests only
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    ort_chars = args.ort_chars or args.chars

    t_start, load_start = time.perf_counter(), list(os.getloadavg())
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    torchvision_without_ops()
    from aimet_torch.quantsim import QuantizationSimModel
    logging.getLogger().setLevel(logging.WARNING)

    spec, w = load_reference(args.model)
    ids_all = load_text_ids(spec["vocab"])
    test = split(ids_all, "test")[: args.chars + 1]
    calib = calibration_stream(split(ids_all, "train"))[: args.calib_chars]
    ref, ref_ids, ref_parity = rnnslim_reference(args.model, args.chars, no_latency=args.no_latency,
                                                 main_python=args.main_python)
    if not np.array_equal(test, ref_ids):
        raise SystemExit("the test prefix read here differs from rnnslim's (split or vocabulary mismatch)")
    fp = CharRNN.from_reference(spec, w)
    k = len(ref_parity)
    parity = {"torch_fp32_max_abs_logit_diff": float(np.abs(stream_logits(fp, test[:k]) - ref_parity).max()),
              "chars": k, "how": "CharRNN (torch_char_model.py) vs rnnslim's torch logits (reference_outputs.py)"}
    print(f"parity fp32 vs rnnslim: {parity['torch_fp32_max_abs_logit_diff']:.2e}", flush=True)
    cell = spec["cell"].upper()
    dummy = torch.zeros(1, 1, dtype=torch.long)
    work = Path(tempfile.mkdtemp(prefix="peers_aimet_"))
    rows: list[dict] = []
    timers: dict = {}
    facts: dict = {"torchvision": "the registry's torchvision 0.28.0 is the CUDA build; imported with the nms / "
                                  "qnms schemas declared by hand (torchvision_without_ops)"}

    # -- W8A8, default config -------------------------------------------------------------------------------
    row8 = base_row(f"AIMET QuantSim {cell} W8A8", f"QuantizationSimModel(model, dummy, default_param_bw=8, "
                    f"default_output_bw=8) + compute_encodings", "int8 fake-quant", 8)
    rows.append(row8)
    sim8 = None
    try:
        t0 = time.perf_counter()
        sim8 = QuantizationSimModel(copy.deepcopy(fp), dummy_input=dummy, default_param_bw=8, default_output_bw=8)
        calibrate_streaming(sim8, calib)
        row8["calibration_seconds"] = round(time.perf_counter() - t0, 1)
        facts["quantizers_w8a8"] = quantizer_census(sim8.model)
        print(facts["quantizers_w8a8"]["recurrent_summary"], flush=True)
        row8.update(sim_losses(sim8, test))
        row8["note"] = ("fake-quant (float kernels on quantize-dequantized weights); loss_nats streams one character "
                        "per call, so h/c are quantized to uint8 at every step; loss_nats_sequence_t1000: one call per "
                        "1000 characters (state quantized every 1000)")
        timers[row8["variant"]] = lambda: step_latency(module_stepper(sim8.model), len(spec["vocab"]), steps=100,
                                                       repeats=3, warmup=20)["median_ms"]
    except Exception as e:  # noqa: BLE001 - a peer that fails is a row with its message
        failed(row8, e)
    show(row8)

    if sim8 is not None:
        export_rows(sim8, spec, work, test, ort_chars, row8, rows, timers, cell)

    # -- W4A16 default config -------------------------------------------------------------------------------
    row4 = base_row(f"AIMET QuantSim {cell} W4A16", "QuantizationSimModel(default_param_bw=4, default_output_bw=16)",
                    "int4 weights, int16 activations, fake-quant", 4)
    rows.append(row4)
    try:
        sim4 = QuantizationSimModel(copy.deepcopy(fp), dummy_input=dummy, default_param_bw=4, default_output_bw=16)
        take_activation_ranges(sim4, sim8)
        row4.update(sim_losses(sim4, test))
        row4["note"] = "default config: per-tensor 4-bit LSTM/GRU weights and 4-bit recurrent biases; fake-quant"
        path = work / f"{args.model}_w4_default_qdq.onnx"
        row4.update(bytes=qdq_export(sim4, spec, path, opset=21)["bytes"],
                    bytes_how=f"as exported: {path.name}: QDQ ONNX (opset 21), int4 weights (not run in onnxruntime)")
    except Exception as e:  # noqa: BLE001
        failed(row4, e)
    show(row4)

    # -- W4A16 best: per-channel recurrent weights, float biases, SeqMSE on the decoder ---------------------
    rowb = base_row(f"AIMET QuantSim {cell} W4A16 per-channel + SeqMSE",
                    "QuantizationSimModel(default_param_bw=4, default_output_bw=16); rnn.param_quantizers[weight_*] = "
                    "QuantizeDequantize(shape=(G*H, 1), bitwidth=4, symmetric=True); bias quantizers None; "
                    "embedding per row; aimet_torch.seq_mse.apply_seq_mse(sim, loader, num_candidates=20)",
                    "int4 weights (per channel), int16 activations, fake-quant", 4)
    rows.append(rowb)
    simb = None
    try:
        from aimet_torch.seq_mse import apply_seq_mse
        simb = QuantizationSimModel(copy.deepcopy(fp), dummy_input=dummy, default_param_bw=4, default_output_bw=16)
        per_channel_recurrent_weights(simb, 4)
        seq_log = capture_logs(lambda: apply_seq_mse(simb, calib_loader(calib), num_candidates=20))
        take_activation_ranges(simb, sim8)
        facts["quantizers_w4_best"] = quantizer_census(simb.model)
        rowb.update(sim_losses(simb, test))
        rowb["seq_mse_log"] = seq_log
        rowb["note"] = ("Sequential MSE optimizes Linear / Conv2d only: it chose the decoder's encodings and skipped "
                        f"the {cell} without a message; the per-channel recurrent quantizers are placed by hand (the "
                        "config's per_channel_quantization covers Conv / Gemm / MatMul only); fake-quant")
        timers[rowb["variant"]] = lambda: step_latency(module_stepper(simb.model), len(spec["vocab"]), steps=100,
                                                       repeats=3, warmup=20)["median_ms"]
    except Exception as e:  # noqa: BLE001
        failed(rowb, e)
    show(rowb)
    if simb is not None:
        rowx = base_row(f"AIMET QDQ ONNX {cell} W4A16 per-channel (onnxruntime)",
                        "aimet_torch.onnx.export(sim, ..., prequantize_constants=True, opset_version=21)",
                        "int4 weights in the ONNX, onnxruntime", 4)
        rows.append(rowx)
        try:
            path = work / f"{args.model}_w4_qdq.onnx"
            info = qdq_export(simb, spec, path, opset=21)
            rowx.update(bytes=info["bytes"], bytes_how=f"{path.name}: QDQ ONNX (opset 21), int4 weights", onnx=info)
            rowb.update(bytes=info["bytes"], bytes_how=f"as exported: {rowx['bytes_how']}")
            ort_row(rowx, path, spec, test, ort_chars, timers)
        except Exception as e:  # noqa: BLE001
            failed(rowx, e, "does_not_run" if rowx.get("bytes") else "crashed")
        show(rowx)

    # -- AdaRound ---------------------------------------------------------------------------------------------
    rowa = base_row(f"AIMET AdaRound {cell} W4A16", f"Adaround.apply_adaround(model, dummy, AdaroundParameters("
                    f"loader, 8, default_num_iterations={args.adaround_iterations}), default_param_bw=4) then the "
                    f"per-channel sim with set_and_freeze_param_encodings", "int4 weights, fake-quant", 4)
    rows.append(rowa)
    try:
        rowa.update(adaround_variant(fp, spec, calib, test, sim8, simb, work, args.adaround_iterations))
    except Exception as e:  # noqa: BLE001
        failed(rowa, e)
    if rowa.get("loss_nats") is not None and rowb.get("loss_nats") is not None:
        rowa["decoder_only_effect_vs_seqmse_nats"] = rowa["loss_nats"] - rowb["loss_nats"]
    show(rowa)

    duel = None if args.no_latency else interleaved_latency(args.model, timers, rounds=args.latency_rounds,
                                                             main_python=args.main_python)
    if duel:
        attach_latency(rows, duel, "step_latency(steps=100, repeats=3, warmup=20), batch 1, 1 thread, one "
                                   "character per call; median over the interleaved rounds")
        print("latency ms:", {k: round(v, 3) for k, v in duel["peer_median_ms"].items()},
              "rnnslim int8", round(duel["rnnslim_int8_median_ms"], 4), flush=True)

    result = {"model": args.model, "test_chars": int(len(test) - 1), "test_text": test_text(len(test) - 1),
              "calibration": CALIBRATION_TEXT + ", one character per call", "parity": parity, "rows": rows,
              "aimet_facts": facts, "rnnslim": ref, "interleaved_latency": duel, "versions": versions(PACKAGES),
              "machine": {**machine(), "load_avg_start": load_start, "load_avg_end": list(os.getloadavg())},
              "command": command_line(), "git_commit": git_commit(),
              "seconds": round(time.perf_counter() - t_start, 1), "date": now()}
    write_result(args.out, args.model, result)
    print(f"wrote {args.out} ({result['seconds']} s)", flush=True)


def export_rows(sim8, spec, work, test, ort_chars, row8, rows, timers, cell) -> None:
    """The W8A8 sim's two ONNX exports: QDQ with int8 weights (run in onnxruntime) and float ONNX + encodings."""
    rowq = base_row(f"AIMET QDQ ONNX {cell} W8A8 (onnxruntime)",
                    "aimet_torch.onnx.export(sim, ..., prequantize_constants=True)", "int8 QDQ, onnxruntime", 8)
    rows.append(rowq)
    try:
        path = work / f"{spec['cell']}_w8_qdq.onnx"
        info = qdq_export(sim8, spec, path)
        rowq.update(bytes=info["bytes"], bytes_how=f"{path.name}: QDQ ONNX, int8 weights + DequantizeLinear", onnx=info)
        row8.update(bytes=info["bytes"], bytes_how=f"as exported: {rowq['bytes_how']}")
        ort_row(rowq, path, spec, test, ort_chars, timers)
        rowq["note"] = ("onnxruntime runs the LSTM/GRU op in float on the dequantized weights (QDQ around it is not "
                        "fused into an integer recurrent kernel)")
    except Exception as e:  # noqa: BLE001
        failed(rowq, e)
    show(rowq)

    rowe = base_row(f"AIMET sim.onnx.export {cell} W8A8 (ONNX + encodings)",
                    "sim.onnx.export(args, f, dynamo=False) (QuantizationSimModel.export refuses RNN layers)",
                    "fp32", 32)  # onnxruntime runs it float; the encodings JSON (8-bit) is for QNN
    rows.append(rowe)
    try:
        path = work / f"{spec['cell']}_sim_export.onnx"
        kw = export_args(spec)
        sim8.onnx.export(kw.pop("args"), str(path), **kw)
        files = sorted(p for p in work.iterdir() if p.name.startswith(path.stem))
        rowe.update(bytes=sum(p.stat().st_size for p in files), bytes_how=" + ".join(
            f"{p.name} ({p.stat().st_size:,})" for p in files), onnx=ops_of(path))
        ort_row(rowe, path, spec, test, ort_chars, timers)
        rowe["note"] = ("float weights in the ONNX; the encodings file is for Qualcomm's QNN converter, onnxruntime "
                        "ignores it (the loss is the float model's)")
    except Exception as e:  # noqa: BLE001
        failed(rowe, e)
    show(rowe)
    try:  # what QuantizationSimModel.export (the v1-style API) says about the recurrent layer
        sim8.export(str(work), "v1_export", torch.zeros(1, 1, dtype=torch.long))
        rowe["sim_export_v1"] = "exported"
    except Exception as e:  # noqa: BLE001
        rowe["sim_export_v1"] = one_line(e)


def calib_loader(calib: np.ndarray):
    """The calibration stream as a DataLoader of 8 sequences (1024, 1) (AdaRound / SeqMSE feed batches)."""
    from torch.utils.data import DataLoader
    seqs = torch.as_tensor(calib, dtype=torch.long).reshape(8, -1)  # (8, 1024)
    return DataLoader([s.reshape(-1, 1) for s in seqs], batch_size=None)  # each (1024, 1): T-first, B = 1


def capture_logs(fn) -> list[str]:
    """Run fn, returning the log lines it wrote at INFO and up (AIMET's loggers do not propagate to the root)."""
    buf = io.StringIO()
    h = logging.StreamHandler(buf)
    h.setLevel(logging.INFO)
    loggers = [logging.getLogger()] + [lg for lg in logging.root.manager.loggerDict.values()
                                       if isinstance(lg, logging.Logger)]
    for lg in loggers:
        lg.addHandler(h)
    try:
        fn()
    finally:
        for lg in loggers:
            lg.removeHandler(h)
    return [ln for ln in buf.getvalue().splitlines() if ln.strip()][:20]


def adaround_variant(fp, spec, calib, test, sim8, simb, work: Path, iterations: int) -> dict:
    from aimet_torch.adaround import Adaround, AdaroundParameters
    from aimet_torch.quantsim import QuantizationSimModel
    dummy = torch.zeros(1, 1, dtype=torch.long)
    params = AdaroundParameters(calib_loader(calib), num_batches=8, default_num_iterations=iterations,
                                forward_fn=lambda m, x: m(x))
    holder = {}
    log = capture_logs(lambda: holder.setdefault("model", Adaround.apply_adaround(
        copy.deepcopy(fp), dummy, params, path=str(work), filename_prefix="adaround", default_param_bw=4)))
    enc = json.loads((work / "adaround.encodings").read_text())
    rounded = sorted(enc.get("param_encodings", enc) if isinstance(enc, dict) else [e["name"] for e in enc])
    sim = QuantizationSimModel(holder["model"], dummy_input=dummy, default_param_bw=4, default_output_bw=16)
    per_channel_recurrent_weights(sim, 4)
    sim.set_and_freeze_param_encodings(str(work / "adaround.encodings"))
    take_activation_ranges(sim, sim8)
    out = sim_losses(sim, test)
    path = work / "adaround_w4_qdq.onnx"
    out.update(bytes=qdq_export(sim, spec, path, opset=21)["bytes"],
               bytes_how=f"as exported: {path.name}: QDQ ONNX (opset 21), int4 weights (not run in onnxruntime)")
    out.update(outcome="skips_recurrent", adaround_log=log, adarounded_params=rounded,
               error=f"AdaRound rounds Conv2d/ConvTranspose2d/Linear only (AdaroundSupportedModules); it optimized "
                     f"{rounded} and left the {spec['cell'].upper()} weights without a message",
               note="the LSTM/GRU weights get AIMET's nearest rounding (the per-channel 4-bit sim); only the decoder "
                    "is AdaRounded. decoder_only_effect_vs_seqmse_nats: this loss minus the SeqMSE row's (the same sim "
                    "but for the decoder's weight encoding)")
    return out


if __name__ == "__main__":
    main()
