"""Peer: LiteRT / TFLite Micro on the "your model to the device" classifiers (issue 21), for litert_bench.py.

    /work/peers-venv/bin/python benchmarks/peers/litert_bench.py --model basicmotions-lstm32
        (any name of reference_classifier.CLASSIFIERS: basicmotions-lstm32, japanesevowels-lstm48,
         japanesevowels-gru64)

litert_bench.py hands a classifier over to `run` here. rnnslim's side (reference_outputs.py -> reference_
classifier.py, main venv) writes the user's trained weights (torch layout), the standardised train / test
arrays and rnnslim's rows; this side builds the same model in tf_keras: Input (T, F) at batch 1 ->
LSTM / GRU (last step) -> Dense, and converts it as a firmware team would, the training set (every
sequence, batch 1) as the representative data. Variants:
    layer     keras.layers.LSTM / GRU: the LSTM becomes one UNIDIRECTIONAL_SEQUENCE_LSTM (its state is a
              variable tensor: reset before each sequence), the GRU a WHILE loop (TFLite has no fused GRU;
              its quantized conversions run in a child process, as they can crash the converter)
    unrolled  the same layer with unroll=True: T copies of FULLY_CONNECTED / LOGISTIC / TANH / MUL / ADD
Modes float, int8 (full integer: the microcontroller path), 16x8 (int16 activations) and dynamic (int8
weights, float activations), each converted with float input / output. Per row: test accuracy in LiteRT,
.tflite bytes, ops, the latency of one whole sequence at batch 1 with 1 thread (reset variables +
set_tensor + invoke + get_tensor; interleaved with rnnslim's C kernel run_sequence through
peer_common.interleaved_latency), and TFLite Micro (tflite-micro's Python interpreter, reference kernels):
whether it runs, its test accuracy and the arena bytes (RecordingMicroAllocator, this 64-bit host).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from litert_bench import (  # noqa: E402
    PACKAGES,
    captured_output,
    convert,
    keras_rnn_weights,
    one_line,
    tensor_types,
)
from peer_common import (  # noqa: E402
    ROOT,
    command_line,
    git_commit,
    interleaved_latency,
    machine,
    now,
    versions,
    write_result,
)

MODES = ("float", "int8", "16x8", "dynamic")
VARIANTS = ("layer", "unrolled")


def build(keras, spec: dict, w: dict, unroll: bool):
    """Input (T, F) at batch 1 -> LSTM / GRU (last step) -> Dense logits, with the user's weights."""
    rnn = keras.layers.LSTM if spec["cell"] == "lstm" else keras.layers.GRU
    inp = keras.Input(shape=(spec["steps"], spec["features"]), batch_size=1, name="x")
    layer = rnn(spec["hidden_size"], unroll=unroll, name="rnn0")
    head = keras.layers.Dense(spec["classes"], name="head")
    model = keras.Model(inp, head(layer(inp)))
    layer.set_weights(keras_rnn_weights(w, spec["cell"], 0))
    head.set_weights([w["head.weight"].T.copy(), w["head.bias"]])
    return model


def representative(x_train: np.ndarray):
    def rep():
        for x in x_train:
            yield [x[None].astype(np.float32)]
    return rep


class LiteRTClassifier:
    """One whole sequence per invoke, from the zero state (the fused LSTM's variables reset first)."""

    def __init__(self, tfl: bytes) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.it = Interpreter(model_content=tfl, num_threads=1)
        self.it.allocate_tensors()
        self.inp, self.out = self.it.get_input_details()[0]["index"], self.it.get_output_details()[0]["index"]
        self.ops = sorted({o["op_name"] for o in self.it._get_ops_details()})

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.it.reset_all_variables()
        self.it.set_tensor(self.inp, x[None].astype(np.float32))
        self.it.invoke()
        return self.it.get_tensor(self.out).reshape(-1)


class TFLMClassifier:
    def __init__(self, tfl: bytes, arena: int) -> None:
        from tflite_micro.python.tflite_micro import runtime

        self.it = runtime.Interpreter.from_bytes(tfl, arena_size=arena)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.it.reset()
        self.it.set_input(x[None].astype(np.float32), 0)
        self.it.invoke()
        return self.it.get_output(0).reshape(-1)

    def arena_total(self) -> int | None:
        sink: list = []
        with captured_output(sink):
            self.it.print_allocations()
        line = next((ln for ln in "".join(sink).splitlines() if "Arena allocation total" in ln), "")
        digits = [t for t in line.split() if t.isdigit()]
        return int(digits[0]) if digits else None


def sequence_latency(run, x: np.ndarray, steps: int = 50, repeats: int = 5, warmup: int = 5) -> float:
    """Median ms of one whole-sequence inference (as rnnslim's time_stream: median of round medians)."""
    for _ in range(warmup):
        run(x)
    medians = []
    for _ in range(repeats):
        t = []
        for _ in range(steps):
            t0 = time.perf_counter()
            run(x)
            t.append(time.perf_counter() - t0)
        medians.append(float(np.median(t)) * 1e3)
    return float(np.median(medians))


def tflm_cell(tfl: bytes, x_test: np.ndarray, y_test: np.ndarray, litert_pred: np.ndarray) -> dict:
    sink: list = []
    try:
        with captured_output(sink):
            t = TFLMClassifier(tfl, max(1 << 20, 4 * len(tfl)))
        pred = np.array([t(x).argmax() for x in x_test])
        return {"runs": True, "accuracy": float(np.mean(pred == y_test)), "arena_bytes": {"total": t.arena_total()},
                "predictions_differ_from_litert": int(np.sum(pred != litert_pred)),
                "arena_note": "RecordingMicroAllocator on this 64-bit host (pointers 8 bytes)"}
    except Exception as e:  # noqa: BLE001 - a runtime that refuses is a cell with its message
        said = [ln.strip() for ln in "".join(sink).splitlines() if ln.strip() and "RecordingMicroAllocator" not in ln]
        return {"runs": False, "error": one_line(e) + (f" ({'; '.join(said[:2])})" if said else "")}


def convert_child(ref_dir: Path, variant: str, mode: str, timeout: int = 900) -> tuple[bytes | None, str | None]:
    """Convert in a child process (a GRU layer's quantized conversion can crash the converter)."""
    out = ref_dir / f"{variant}-{mode}.tflite"
    cmd = [sys.executable, __file__, "--child", str(ref_dir), variant, mode, str(out)]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"conversion did not finish in {timeout} s"
    if p.returncode < 0:
        return None, f"the TFLite converter crashed (signal {-p.returncode})"
    if p.returncode or not out.exists():
        return None, one_line(p.stderr or p.stdout or f"exit {p.returncode}")
    return out.read_bytes(), None


def _convert(tf, keras, ref_dir: Path, spec: dict, w: dict, variant: str, mode: str) -> bytes:
    rep = representative(np.load(ref_dir / "x_train.npy")) if mode in ("int8", "16x8") else None
    return convert(tf, build(keras, spec, w, variant == "unrolled"), mode, rep)


def measure(tfl: bytes, x_test: np.ndarray, y_test: np.ndarray, ref_logits: np.ndarray, row: dict) -> LiteRTClassifier:
    run = LiteRTClassifier(tfl)
    logits = np.stack([run(x) for x in x_test])
    pred = logits.argmax(1)
    row.update({"outcome": "ok", "accuracy": float(np.mean(pred == y_test)), "bytes": len(tfl),
                "bytes_how": ".tflite file", "ops": run.ops, "tensor_types": tensor_types(run.it),
                "max_abs_logit_diff_vs_rnnslim_fp32": float(np.abs(logits - ref_logits).max()),
                "predictions_differ_from_rnnslim_fp32": int(np.sum(pred != ref_logits.argmax(1)))})
    row["tflm"] = tflm_cell(tfl, x_test, y_test, pred)
    return run


def run(args) -> None:
    """The classifier's rows, written into args.out under args.model (litert_bench.py's --out)."""
    import tensorflow as tf
    import tf_keras as keras

    t_start, load_start = time.perf_counter(), list(os.getloadavg())
    ref_dir = Path(tempfile.mkdtemp(prefix="peers_litert_cls_"))
    cmd = [args.main_python, str(Path(__file__).with_name("reference_outputs.py")), "--model", args.model,
           "--out", str(ref_dir)] + (["--no-latency"] if args.no_latency else [])
    subprocess.run(cmd, check=True, cwd=ROOT)
    ref = json.loads((ref_dir / "reference.json").read_text())
    ref["command"] = " ".join([".venv/bin/python", "benchmarks/peers/reference_outputs.py", *cmd[2:]])
    ref_logits = np.load(ref_dir / "parity_logits.npy")
    spec, w = ref["spec"], load_file(str(ref_dir / "weights.safetensors"))
    x_test, y_test = np.load(ref_dir / "x_test.npy"), np.load(ref_dir / "y_test.npy")
    rows, timers = [], {}
    for variant in VARIANTS:
        for mode in MODES:
            row = {"variant": f"LiteRT {spec['cell'].upper()} {variant} model, {mode}", "peer": "LiteRT",
                   "api": f"tf_keras {variant} -> tf.lite.TFLiteConverter.from_keras_model ({mode}) -> "
                          "ai_edge_litert Interpreter", "mode": mode, "bits": 32 if mode == "float" else 8}
            rows.append(row)
            t0 = time.perf_counter()
            if variant == "layer" and spec["cell"] == "gru" and mode != "float":
                tfl, err = convert_child(ref_dir, variant, mode)
            else:
                try:
                    tfl, err = _convert(tf, keras, ref_dir, spec, w, variant, mode), None
                except Exception as e:  # noqa: BLE001 - a refusal is a row
                    tfl, err = None, one_line(e)
            row["convert_seconds"] = round(time.perf_counter() - t0, 1)
            if tfl is None:
                row.update({"outcome": "crashed" if "crashed" in err else "refused", "error": err})
            else:
                try:
                    runner = measure(tfl, x_test, y_test, ref_logits, row)
                    if mode != "float":
                        timers[row["variant"]] = lambda r=runner: sequence_latency(r, x_test[0])
                except Exception as e:  # noqa: BLE001
                    row.update({"outcome": "does_not_run", "error": one_line(e)})
            print(f"{row['variant']:40s} {row.get('accuracy', row.get('error'))}  {row.get('bytes', 0):>8,} B  "
                  f"tflm {row.get('tflm', {}).get('accuracy')} {row.get('tflm', {}).get('arena_bytes')}", flush=True)
    duel = None if args.no_latency else interleaved_latency(args.model, timers, args.latency_rounds, args.main_python)
    for row in rows:
        if duel and row["variant"] in duel["peer_median_ms"]:
            row["latency"] = {"median_ms": duel["peer_median_ms"][row["variant"]], "how": "one whole sequence at "
                              "batch 1 (reset + set_tensor + invoke + get_tensor), 1 thread: median over the "
                              "interleaved rounds"}
    result = {"model": args.model, "kind": "classifier", "what": ref["what"], "test_sequences": ref["test_sequences"],
              "test_text": f"aeon {ref['dataset']} test set, {ref['test_sequences']} sequences of {spec['steps']} "
                           f"steps x {spec['features']} features ({ref['standardisation']})",
              "rows": rows, "rnnslim": ref, "interleaved_latency": duel,
              "calibration": f"the training set ({ref['train_sequences']} sequences, batch 1) as representative data",
              "versions": versions(PACKAGES),
              "machine": {**machine(), "load_avg_start": load_start, "load_avg_end": list(os.getloadavg())},
              "command": command_line(), "git_commit": git_commit(),
              "seconds": round(time.perf_counter() - t_start, 1), "date": now()}
    write_result(args.out, args.model, result)
    print(f"wrote {args.out} ({result['seconds']} s)", flush=True)


def child_main(argv: list[str]) -> None:
    import tensorflow as tf
    import tf_keras as keras

    ref_dir, variant, mode, out = Path(argv[0]), argv[1], argv[2], Path(argv[3])
    spec = json.loads((ref_dir / "reference.json").read_text())["spec"]
    out.write_bytes(_convert(tf, keras, ref_dir, spec, load_file(str(ref_dir / "weights.safetensors")), variant, mode))


if __name__ == "__main__" and sys.argv[1:2] == ["--child"]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    child_main(sys.argv[2:])
