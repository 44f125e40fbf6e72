"""Peer: LiteRT / TFLite full-integer int8 (and TFLite Micro) on rnnslim's reference char models (issue 21).

    /work/peers-venv/bin/python benchmarks/peers/litert_bench.py --model charlstm-256x2 [--chars 20000]
        [--main-python .venv/bin/python] [--no-latency] [--tflm-chars 2000]
    /work/peers-venv/bin/python benchmarks/peers/litert_bench.py --model basicmotions-lstm32
        (a classifier of the "your model to the device" table: litert_classifier.py)

Run with a separate venv (python3.11 + tensorflow-cpu, tf-keras, ai-edge-litert, tflite-micro, numpy,
safetensors; no torch, no rnnslim): setup in benchmarks/peers/README.md. This script reads
../shared/models/NAME.{json,safetensors} itself and rebuilds the model in Keras (tf_keras, the
Keras 2 API whose LSTM layer the TFLite converter fuses into UNIDIRECTIONAL_SEQUENCE_LSTM; Keras 3's
LSTM converts to a WHILE loop that does not keep its state between invocations).

Layout torch -> Keras: kernel = weight_ih.T (in, G*H), recurrent_kernel = weight_hh.T (H, G*H);
LSTM gate blocks i,f,g,o are Keras's i,f,c,o (same order), bias = bias_ih + bias_hh; GRU blocks r,z,n
become Keras's z,r,h (first two swapped) with reset_after=True and bias [bias_ih; bias_hh] (2, 3H).

Variants (each: float, full-integer int8, the 16x8 mode with int16 activations where the converter
offers it, and "dynamic": int8 weights with float activations, LiteRT's mobile default, for reference):
    layer   Embedding -> LSTM/GRU layers (T = 1, batch 1) -> Dense, converted as TFLite converts a
            Keras model. LSTM becomes UNIDIRECTIONAL_SEQUENCE_LSTM, whose state lives in variable
            tensors that persist between invocations: one invoke per character streams with the state
            carried (as a firmware would run it). GRU becomes a WHILE loop (no fused GRU op in TFLite)
            whose state does not persist, so it is not a streaming model; its int8 conversion is run
            in a child process because it can crash the converter.
    step    the same model as one explicit step: inputs ids (1, 1) and the state of every layer
            (LSTM h, c; GRU h), outputs logits and the new state (RNN(unroll=True) over T = 1: plain
            FULLY_CONNECTED / LOGISTIC / TANH / MUL / ADD ops). The caller carries the state as float
            between invocations (int8 models quantize it at the input and dequantize it at the output).
Quantized variants use a representative data set of 8 x 1024 contiguous training characters (8192
steps, the state carried; the same number of characters rnnslim calibrates int8 on), taken at evenly
spaced offsets of the training split [0, 0.9) of the file.

Measured per variant: test loss (mean NLL of the first --chars test characters [0.95, 1.0) of the
file, one stream at batch 1, state carried, LiteRT interpreter), .tflite bytes, ops, latency per step
at batch 1 with 1 thread (median of 5 rounds x 200 steps after 50 warm-up steps, as
rnnslim.measure.streaming_latency; with LiteRT's default XNNPACK delegate and without default delegates),
conversion seconds, and for TFLite Micro (tflite-micro's Python interpreter, reference kernels): whether
it runs the model, the arena bytes it records (RecordingMicroAllocator, 64-bit host: pointers are 8
bytes), and its loss on the first --tflm-chars characters. Float parity: the Keras model and the float
.tflite against rnnslim's torch logits (reference_outputs.py, run as a subprocess with --main-python,
which also gives rnnslim's fp32 and int8 integer rows on the same prefix in the same run).
Writes benchmarks/results/peers_litert.json (merged per model).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peer_common import (  # noqa: E402
    CALIBRATION_TEXT,
    MODELS,
    RESULTS,
    ROOT,
    calibration_stream,
    command_line,
    git_commit,
    load_reference,
    load_text_ids,
    machine,
    nll,
    now,
    rnnslim_int8_latency_ms,
    rnnslim_reference,
    split,
    test_text,
    versions,
    write_result,
)

OUT = RESULTS / "peers_litert.json"
PACKAGES = ("tensorflow-cpu", "tf-keras", "ai-edge-litert", "tflite-micro", "numpy", "safetensors")


# ---- torch layout -> Keras -------------------------------------------------------------------------------

def keras_rnn_weights(w: dict, cell: str, k: int) -> list[np.ndarray]:
    """[kernel (in, G*H), recurrent_kernel (H, G*H), bias] of layer k from torch's tensors."""
    wi, wh = w[f"rnn.weight_ih_l{k}"], w[f"rnn.weight_hh_l{k}"]  # (G*H, in), (G*H, H)
    bi, bh = w[f"rnn.bias_ih_l{k}"], w[f"rnn.bias_hh_l{k}"]  # (G*H,)
    if cell == "lstm":  # torch i,f,g,o == Keras i,f,c,o
        return [wi.T.copy(), wh.T.copy(), bi + bh]
    H = wh.shape[1]
    order = np.concatenate([np.arange(H, 2 * H), np.arange(0, H), np.arange(2 * H, 3 * H)])  # r,z,n -> z,r,n
    return [wi[order].T.copy(), wh[order].T.copy(), np.stack([bi[order], bh[order]])]


def build_layer_model(keras, spec: dict, w: dict, T: int | None):
    """Embedding -> RNN layers (return_sequences) -> Dense at batch 1 and T steps (None: any)."""
    V, H, L = len(spec["vocab"]), spec["hidden_size"], spec["num_layers"]
    rnn = keras.layers.LSTM if spec["cell"] == "lstm" else keras.layers.GRU
    inp = keras.Input(shape=(T,), batch_size=1, dtype="int32", name="ids")
    x = keras.layers.Embedding(V, H, name="embedding")(inp)
    layers = [rnn(H, return_sequences=True, name=f"rnn{k}") for k in range(L)]
    for ly in layers:
        x = ly(x)
    dec = keras.layers.Dense(V, name="decoder")
    model = keras.Model(inp, dec(x))
    model.get_layer("embedding").set_weights([w["embedding.weight"]])
    for k, ly in enumerate(layers):
        ly.set_weights(keras_rnn_weights(w, spec["cell"], k))
    dec.set_weights([w["decoder.weight"].T.copy(), w["decoder.bias"]])
    return model


def state_names(spec: dict) -> list[str]:
    per = ("h", "c") if spec["cell"] == "lstm" else ("h",)
    return [f"{s}{k}" for k in range(spec["num_layers"]) for s in per]


def build_step_model(keras, spec: dict, w: dict):
    """One explicit step: (ids (1, 1), state...) -> (logits (1, 1, V), new state...); states (1, H)."""
    V, H, L = len(spec["vocab"]), spec["hidden_size"], spec["num_layers"]
    rnn = keras.layers.LSTM if spec["cell"] == "lstm" else keras.layers.GRU
    ids = keras.Input(shape=(1,), batch_size=1, dtype="int32", name="ids")
    names = state_names(spec)
    states = {n: keras.Input(shape=(H,), batch_size=1, name=n) for n in names}
    x = keras.layers.Embedding(V, H, name="embedding")(ids)
    per = len(names) // L
    new, layers = [], []
    for k in range(L):
        ly = rnn(H, return_sequences=True, return_state=True, unroll=True, name=f"rnn{k}")
        layers.append(ly)
        x, *st = ly(x, initial_state=[states[n] for n in names[k * per : (k + 1) * per]])
        new += st
    dec = keras.layers.Dense(V, name="decoder")
    model = keras.Model([ids, *states.values()], [dec(x), *new])
    model.get_layer("embedding").set_weights([w["embedding.weight"]])
    for k, ly in enumerate(layers):
        ly.set_weights(keras_rnn_weights(w, spec["cell"], k))
    dec.set_weights([w["decoder.weight"].T.copy(), w["decoder.bias"]])
    return model


# ---- conversion --------------------------------------------------------------------------------------------

def convert(tf, model, mode: str, representative=None) -> bytes:
    """mode float | int8 (TFLITE_BUILTINS_INT8) | 16x8 (int16 activations, int8 weights) | dynamic (int8
    weights, float activations: Optimize.DEFAULT without data, LiteRT's "dynamic range" hybrid kernels,
    not a microcontroller model); float I/O."""
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if mode == "dynamic":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    elif mode != "float":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = representative
        ops = tf.lite.OpsSet
        conv.target_spec.supported_ops = [ops.TFLITE_BUILTINS_INT8 if mode == "int8"
                                          else ops.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    return conv.convert()


def one_line(e: BaseException | str) -> str:
    text = str(e).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    hit = [ln for ln in lines if "error" in ln.lower() or "not" in ln.lower()]
    return (hit[0] if hit else lines[-1] if lines else type(e).__name__)[:400]


# ---- running: LiteRT and TFLite Micro ---------------------------------------------------------------------

class LiteRTStream:
    """One character per invoke, state carried: inside the model (layer) or by the caller (step)."""

    def __init__(self, tfl: bytes, spec: dict, explicit_state: bool, delegates: bool = True) -> None:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        kw = {} if delegates else {"experimental_op_resolver_type": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}
        self.it = Interpreter(model_content=tfl, num_threads=1, **kw)
        self.it.allocate_tensors()
        self.explicit = explicit_state
        self.names = state_names(spec) if explicit_state else []
        sig = self.it.get_signature_runner()
        ins, outs = sig.get_input_details(), sig.get_output_details()
        self.in_idx = {n: d["index"] for n, d in ins.items()}
        # outputs: the logits are the one with V columns ranked first; states follow in model order
        out_by_index = sorted(outs.items(), key=lambda kv: kv[0])
        self.out_names = [n for n, _ in out_by_index]
        self.out_idx = {n: d["index"] for n, d in outs.items()}
        self.out_shape = {n: tuple(d["shape"]) for n, d in outs.items()}
        self.in_shape = {n: tuple(d["shape"]) for n, d in ins.items()}
        self.ids_idx = self.in_idx["ids"]
        self.ops = sorted({o["op_name"] for o in self.it._get_ops_details()})
        self._map_outputs(spec)
        self.reset()

    def _map_outputs(self, spec: dict) -> None:
        """Which output is the logits, and the new state of each input state in model order."""
        V = len(spec["vocab"])
        logits = [n for n in self.out_names if len(self.out_shape[n]) == 3 and self.out_shape[n][-1] == V]
        self.logits_idx = self.out_idx[logits[0]]
        rest = [n for n in self.out_names if n != logits[0]]
        # tf_keras names outputs "rnn{k}", "rnn{k}_1", ... in model order: sort by the layer then position
        def key(n: str):
            m = re.search(r"rnn(\d+)(?:_(\d+))?$", n)
            return (int(m.group(1)), int(m.group(2) or 0)) if m else (1 << 30, n)
        self.state_out_idx = [self.out_idx[n] for n in sorted(rest, key=key)]
        if self.explicit and len(self.state_out_idx) != len(self.names):
            raise ValueError(f"step model has outputs {self.out_names}; expected logits + {self.names}")

    def reset(self) -> None:
        self.it.reset_all_variables()  # the fused LSTM's state tensors (variables) back to zero
        self.state = [np.zeros(self.in_shape[n], np.float32) for n in self.names]

    def step(self, token: int) -> np.ndarray:
        it = self.it
        it.set_tensor(self.ids_idx, np.array([[token]], np.int32))
        for n, s in zip(self.names, self.state):
            it.set_tensor(self.in_idx[n], s)
        it.invoke()
        if self.explicit:
            self.state = [it.get_tensor(i) for i in self.state_out_idx]
        return it.get_tensor(self.logits_idx).reshape(-1)


def tensor_types(it) -> dict:
    """How many tensors of each type the model holds, and the names of its int16 ones (the integer LSTM's
    cell state and gate intermediates)."""
    counts: dict = {}
    int16 = []
    for d in it.get_tensor_details():
        t = np.dtype(d["dtype"]).name
        counts[t] = counts.get(t, 0) + 1
        if t == "int16":
            int16.append(d["name"])
    return {"counts": counts, "int16_tensors": int16[:12]}


def invoke_only_latency(runner, steps: int = 200, repeats: int = 5, warmup: int = 50) -> float:
    """Median ms of interpreter.invoke() alone (inputs set once, nothing read back): the kernels' time
    without the Python set_tensor / get_tensor calls of a streaming step (a lower bound for LiteRT)."""
    runner.reset()
    runner.step(1)
    it = runner.it
    for _ in range(warmup):
        it.invoke()
    medians = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            it.invoke()
        medians.append((time.perf_counter() - t0) / steps * 1e3)
    return float(np.median(medians))


def stream_logits(runner, x: np.ndarray) -> np.ndarray:
    runner.reset()
    return np.stack([runner.step(int(t)).astype(np.float32) for t in x])


def step_latency(runner, vocab: int, steps: int = 200, repeats: int = 5, warmup: int = 50) -> dict:
    tokens = np.random.default_rng(0).integers(0, vocab, 256)
    runner.reset()
    i = 0
    for _ in range(warmup):
        runner.step(int(tokens[i % 256]))
        i += 1
    medians = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            runner.step(int(tokens[i % 256]))
            i += 1
        medians.append((time.perf_counter() - t0) / steps * 1e3)
    return {"median_ms": float(np.median(medians)), "spread_ms": [min(medians), max(medians)],
            "load_avg": list(os.getloadavg()), "how": f"median of {repeats} rounds x {steps} steps after "
            f"{warmup} warm-up (set_tensor + invoke + get_tensor per step), 1 thread"}


def _tflite_child():
    """rnnslim's TFLite child module (src/rnnslim/export/tflite_child.py), loaded by path: it imports neither
    torch nor rnnslim, so this venv (no rnnslim) shares its helpers instead of copying them."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("rnnslim_tflite_child",
                                                  ROOT / "src" / "rnnslim" / "export" / "tflite_child.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# C-level stdout and stderr (TFLite Micro prints its allocation report there) into a list
captured_output = _tflite_child().captured_fds


class TFLMStream:
    """The same streaming contract through tflite-micro's Python interpreter (reference kernels)."""

    def __init__(self, tfl: bytes, spec: dict, explicit_state: bool, arena: int) -> None:
        from tflite_micro.python.tflite_micro import runtime

        self.tfl, self.arena, self.spec, self.explicit = tfl, arena, spec, explicit_state
        self.runtime = runtime
        self.it = runtime.Interpreter.from_bytes(tfl, arena_size=arena)
        self.names = state_names(spec) if explicit_state else []
        self.ref = LiteRTStream(tfl, spec, explicit_state)  # input / output order and names
        sub_in = self.ref.it.get_input_details()
        self.in_pos = {d["index"]: p for p, d in enumerate(sub_in)}
        sub_out = self.ref.it.get_output_details()
        self.out_pos = {d["index"]: p for p, d in enumerate(sub_out)}
        self.reset()

    def reset(self) -> None:
        self.it.reset()
        self.state = [np.zeros((1, self.spec["hidden_size"]), np.float32) for _ in self.names]

    def step(self, token: int) -> np.ndarray:
        r = self.ref
        self.it.set_input(np.array([[token]], np.int32), self.in_pos[r.ids_idx])
        for n, s in zip(self.names, self.state):
            self.it.set_input(s, self.in_pos[r.in_idx[n]])
        self.it.invoke()
        if self.explicit:
            self.state = [self.it.get_output(self.out_pos[i]) for i in r.state_out_idx]
        return self.it.get_output(self.out_pos[r.logits_idx]).reshape(-1)

    def arena_bytes(self) -> dict:
        sink: list = []
        with captured_output(sink):
            self.it.print_allocations()
        text = sink[0] if sink else ""
        tot = re.search(r"Arena allocation total (\d+) bytes", text)
        head = re.search(r"Arena allocation head (\d+) bytes", text)
        tail = re.search(r"Arena allocation tail (\d+) bytes", text)
        return {"total": int(tot.group(1)) if tot else None, "head": int(head.group(1)) if head else None,
                "tail": int(tail.group(1)) if tail else None}


# ---- one variant -----------------------------------------------------------------------------------------

def measure_variant(tfl: bytes, spec: dict, explicit: bool, ids: np.ndarray, args, ref_parity: np.ndarray,
                    row: dict) -> None:
    V = len(spec["vocab"])
    run = LiteRTStream(tfl, spec, explicit)
    row["ops"] = run.ops
    row["tensor_types"] = tensor_types(run.it)
    row["tflite_bytes"] = len(tfl)
    t0 = time.perf_counter()
    logits = stream_logits(run, ids[:-1])
    row["eval_seconds"] = round(time.perf_counter() - t0, 1)
    row.update(nll(logits, ids[1:]))
    k = len(ref_parity)
    row["max_abs_logit_diff_vs_rnnslim_fp32"] = float(np.abs(logits[:k] - ref_parity).max())
    row["argmax_agreement_vs_rnnslim_fp32"] = float(np.mean(logits[:k].argmax(1) == ref_parity.argmax(1)))
    if not args.no_latency:
        row["latency"] = step_latency(run, V)
        row["latency_no_default_delegates"] = step_latency(LiteRTStream(tfl, spec, explicit, delegates=False), V)
    row["tflm"] = tflm_facts(tfl, spec, explicit, ids, logits, args)


def tflm_facts(tfl: bytes, spec: dict, explicit: bool, ids: np.ndarray, litert_logits: np.ndarray, args) -> dict:
    sink: list = []
    try:
        arena = max(1 << 20, 4 * len(tfl))
        with captured_output(sink):
            t = TFLMStream(tfl, spec, explicit, arena)
        n = min(args.tflm_chars, len(ids) - 1)
        t0 = time.perf_counter()
        logits = stream_logits(t, ids[:n])
        out = {"runs": True, "chars": n, **{f"loss_nats_first_{n}": nll(logits, ids[1 : n + 1])["loss_nats"]},
               "max_abs_logit_diff_vs_litert": float(np.abs(logits - litert_logits[:n]).max()),
               "argmax_agreement_vs_litert": float(np.mean(logits.argmax(1) == litert_logits[:n].argmax(1))),
               "seconds": round(time.perf_counter() - t0, 1), "arena_bytes": t.arena_bytes(),
               "arena_note": "RecordingMicroAllocator on this 64-bit host after the run; a 32-bit MCU's "
                             "structs are smaller (pointers 4 bytes)"}
        return out
    except Exception as e:  # noqa: BLE001 - a peer that fails is a row with its message
        said = [ln.strip() for ln in "".join(sink).splitlines() if ln.strip() and "RecordingMicroAllocator" not in ln]
        return {"runs": False, "error": one_line(e) + (f" ({'; '.join(said[:2])})" if said else "")}


# ---- the GRU layer model's int8 conversion, in a child (it can crash the converter) ------------------------

def convert_in_child(model_name: str, variant: str, mode: str, timeout: int = 900) -> dict:
    cmd = [sys.executable, __file__, "--model", model_name, "--child-convert", f"{variant}:{mode}"]
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"conversion did not finish in {timeout} s"}
    out = {"returncode": p.returncode, "seconds": round(time.perf_counter() - t0, 1)}
    m = re.search(r"^CHILD (\{.*\})$", p.stdout, re.M)
    if m:
        out.update(json.loads(m.group(1)))
    elif p.returncode < 0:
        out["error"] = f"the TFLite converter crashed (signal {-p.returncode}, " \
                       f"{'segmentation fault' if p.returncode == -11 else 'killed'})"
    else:
        out["error"] = one_line(p.stderr or p.stdout or f"exit {p.returncode}")
    return out


def child_convert(args, tf, keras, spec, w, ids_all) -> None:
    variant, mode = args.child_convert.split(":")
    model = build_layer_model(keras, spec, w, 1)
    calib = calibration_stream(split(ids_all, "train"))

    def rep():
        for t in calib:
            yield [np.array([[t]], np.int32)]
    try:
        tfl = convert(tf, model, mode, rep)
        print("CHILD " + json.dumps({"converted": True, "tflite_bytes": len(tfl)}), flush=True)
    except Exception as e:  # noqa: BLE001
        print("CHILD " + json.dumps({"converted": False, "error": one_line(e)}), flush=True)


# ---- main ------------------------------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="charlstm-256x2")
    ap.add_argument("--chars", type=int, default=20000, help="first N test characters")
    ap.add_argument("--parity-chars", type=int, default=2000)
    ap.add_argument("--tflm-chars", type=int, default=2000, help="characters streamed through TFLite Micro")
    ap.add_argument("--main-python", default=str(ROOT / ".venv" / "bin" / "python"))
    ap.add_argument("--modes", default="float,int8,16x8,dynamic")
    ap.add_argument("--variants", default="layer,step")
    ap.add_argument("--no-latency", action="store_true")
    ap.add_argument("--latency-rounds", type=int, default=3, help="interleaved rnnslim / LiteRT latency rounds")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--child-convert", help=argparse.SUPPRESS)
    args = ap.parse_args()

    import tensorflow as tf
    import tf_keras as keras

    tf.config.threading.set_intra_op_parallelism_threads(1)
    if not (MODELS / f"{args.model}.json").exists():  # a classifier of the "your model to the device" table
        from litert_classifier import run

        return run(args)
    spec, w = load_reference(args.model)
    ids_all = load_text_ids(spec["vocab"])
    if args.child_convert:
        return child_convert(args, tf, keras, spec, w, ids_all)

    t_start, load_start = time.perf_counter(), list(os.getloadavg())
    ref, ref_ids, ref_parity = rnnslim_reference(args.model, args.chars, args.parity_chars, args.no_latency,
                                                 args.main_python)
    ids = split(ids_all, "test")[: args.chars + 1]
    if not np.array_equal(ids, ref_ids):
        raise SystemExit("the test prefix read here differs from rnnslim's (split or vocabulary mismatch)")

    keras_model = build_layer_model(keras, spec, w, None)
    k = len(ref_parity)
    kl = keras_model(ids[None, :k].astype(np.int32)).numpy()[0]
    parity = {"keras_fp32_max_abs_logit_diff": float(np.abs(kl - ref_parity).max()), "chars": k,
              "how": "tf_keras model over the first chars as one sequence from the zero state vs rnnslim's torch "
                     "logits (reference_outputs.py)"}
    print(f"parity: Keras fp32 vs rnnslim fp32 max |logit diff| {parity['keras_fp32_max_abs_logit_diff']:.2e} "
          f"over {k} chars", flush=True)

    calib = calibration_stream(split(ids_all, "train"))
    rows: list[dict] = []
    timed: list[tuple[dict, bytes, bool]] = []  # (row, .tflite, explicit state) of every streaming variant
    modes = args.modes.split(",")
    for variant in args.variants.split(","):
        explicit = variant == "step"
        model = build_step_model(keras, spec, w) if explicit else build_layer_model(keras, spec, w, 1)
        float_tfl = None
        for mode in modes:
            row = {"variant": f"LiteRT {spec['cell'].upper()} {variant} model, {mode}", "api": variant, "mode": mode}
            rows.append(row)
            if variant == "layer" and spec["cell"] == "gru" and mode in ("int8", "16x8"):
                row.update(convert_in_child(args.model, variant, mode))
                print(f"{row['variant']:40s} {row.get('error') or row}", flush=True)
                continue
            rep = representative(calib, float_tfl, spec, explicit) if mode in ("int8", "16x8") else None
            t0 = time.perf_counter()
            try:
                tfl = convert(tf, model, mode, rep)
            except Exception as e:  # noqa: BLE001
                row["error"] = one_line(e)
                print(f"{row['variant']:40s} refused: {row['error']}", flush=True)
                continue
            row["convert_seconds"] = round(time.perf_counter() - t0, 1)
            if mode == "float":
                float_tfl = tfl
            if variant == "layer" and spec["cell"] == "gru":
                row["streaming"] = False
                row["note"] = ("the GRU layer becomes a WHILE loop over T: its state does not persist between "
                               "invocations, so one invoke per character restarts from the zero state; the "
                               "streaming rows are the step model's")
                run = LiteRTStream(tfl, spec, False)
                row["ops"], row["tflite_bytes"] = run.ops, len(tfl)
                print(f"{row['variant']:40s} {len(tfl):>10,} B  ops {run.ops} (not streaming)", flush=True)
                continue
            timed.append((row, tfl, explicit))
            try:
                measure_variant(tfl, spec, explicit, ids, args, ref_parity, row)
            except Exception as e:  # noqa: BLE001
                row["error"] = one_line(e)
            lat = row.get("latency", {}).get("median_ms")
            print(f"{row['variant']:40s} loss {row.get('loss_nats', float('nan')):.4f}  "
                  f"{row.get('tflite_bytes', 0):>10,} B  {lat if lat is None else round(lat, 4)} ms  "
                  f"tflm {row.get('tflm', {}).get('arena_bytes', {})} {row.get('error', '')}", flush=True)

    duel = None if args.no_latency else interleaved_latency(args, spec, timed)
    result = {
        "model": args.model, "test_chars": int(len(ids) - 1), "test_text": test_text(len(ids) - 1),
        "parity": parity, "rows": rows, "rnnslim": ref, "interleaved_latency": duel, "calibration": CALIBRATION_TEXT,
        "versions": versions(PACKAGES),
        "machine": {**machine(), "load_avg_start": load_start, "load_avg_end": list(os.getloadavg())},
        "command": command_line(), "git_commit": git_commit(), "seconds": round(time.perf_counter() - t_start, 1),
        "date": now(),
    }
    write_result(args.out, args.model, result)
    print(f"wrote {args.out} ({result['seconds']} s)", flush=True)


def interleaved_latency(args, spec: dict, timed: list) -> dict:
    """Step latency of rnnslim's int8 C kernel and of every LiteRT variant, taken in turns (a round: rnnslim
    in a child process, then each variant), so that the ratios compare numbers measured under the same load."""
    V = len(spec["vocab"])
    rounds = []
    for _ in range(args.latency_rounds):
        rn = rnnslim_int8_latency_ms(args.model, args.main_python)
        peers, bare = {}, {}
        for row, tfl, explicit in timed:
            if "error" not in row:
                run = LiteRTStream(tfl, spec, explicit)
                peers[row["variant"]] = step_latency(run, V)["median_ms"]
                bare[row["variant"]] = invoke_only_latency(run)
        rounds.append({"rnnslim_int8_c_kernel_ms": rn, "litert_ms": peers, "litert_invoke_only_ms": bare,
                       "load_avg": list(os.getloadavg())})
    rn_med = float(np.median([r["rnnslim_int8_c_kernel_ms"] for r in rounds]))
    peer_med = {v: float(np.median([r["litert_ms"][v] for r in rounds])) for v in rounds[0]["litert_ms"]}
    bare_med = {v: float(np.median([r["litert_invoke_only_ms"][v] for r in rounds])) for v in rounds[0]["litert_ms"]}
    fastest = min(peer_med, key=peer_med.get) if peer_med else None
    out = {"rounds": rounds, "rnnslim_int8_median_ms": rn_med, "litert_median_ms": peer_med,
           "fastest_litert_variant": fastest,
           "speedup_vs_fastest_litert": peer_med[fastest] / rn_med if fastest else None,
           "speedup_per_variant": {v: ms / rn_med for v, ms in peer_med.items()},
           "litert_invoke_only_median_ms": bare_med,
           "speedup_vs_invoke_only": {v: ms / rn_med for v, ms in bare_med.items()},
           "how": f"{args.latency_rounds} rounds; each: rnnslim int8 (reference_outputs.py --latency-only, "
                  "streaming_latency, which includes its own Python / ctypes call) then every LiteRT variant "
                  "(default delegates; a streaming step with set_tensor / get_tensor, and invoke() alone); "
                  "medians over rounds"}
    if fastest:
        print(f"interleaved latency: rnnslim int8 {rn_med:.4f} ms, fastest LiteRT ({fastest}) {peer_med[fastest]:.4f} "
              f"ms: {out['speedup_vs_fastest_litert']:.1f}x", flush=True)
    return out


def representative(calib: np.ndarray, float_tfl: bytes | None, spec: dict, explicit: bool):
    """The calibration stream as converter samples: ids (1, 1) per step; for the step model also the
    float state before each step (from the float .tflite streamed over the same characters)."""
    if not explicit:
        def rep():
            for t in calib:
                yield [np.array([[t]], np.int32)]
        return rep
    if float_tfl is None:
        raise ValueError("the step model's calibration needs the float variant first (--modes float,...)")
    run = LiteRTStream(float_tfl, spec, True)
    run.reset()
    samples = []
    for t in calib:
        samples.append({"ids": np.array([[t]], np.int32), **dict(zip(run.names, [s.copy() for s in run.state]))})
        run.step(int(t))

    def rep():
        for s in samples:
            yield s  # a dict by input name (the converter matches the signature's inputs)
    return rep


if __name__ == "__main__":
    main()
