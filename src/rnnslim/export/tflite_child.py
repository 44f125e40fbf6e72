"""The TensorFlow side of `rnnslim export --format tflite`, run as a child process by tflite.py.

    python tflite_child.py JOB_DIR        (run by path: imports numpy, tensorflow, tf_keras and
                                           tflite_micro, never torch or rnnslim)

Why a child: the TFLite converter can crash (SIGSEGV, e.g. on a GRU layer's int8 conversion),
which must become an error message rather than the end of the CLI, and TensorFlow stays out of
the torch process. JOB_DIR holds what the parent wrote:

    job.json       {"cell": "lstm" | "gru", "features": 0 or F, "hidden": [H0, H1, ...], "outputs": O,
                    "decoder_rank": r}
    weights.npz    Keras layouts: embedding (V, E) or input_kernel (F, E) + input_bias (E,);
                   rnn{k}_kernel (in, G*H), rnn{k}_recurrent (H, G*H), rnn{k}_bias (G*H,) or (2, 3H) (GRU);
                   decoder_proj (P, r) when r > 0; decoder_kernel (P or r, O), decoder_bias (O,)
    calibration.npy  (S, T) ids or (S, T, F) features: the representative data set
    streams.npy    (n, steps) ids or (n, steps, F) features: the check streams

and this writes model.tflite, logits.npy (n, steps, O: what TFLite Micro computes on the streams,
or LiteRT's interpreter when tflite_micro is absent) and result.json (ops, tensor types, arena).

The model is one streaming step at batch 1 (T = 1), float input and output around int8 insides:
    LSTM  tf_keras LSTM layers -> UNIDIRECTIONAL_SEQUENCE_LSTM (int8 weights and activations,
          int16 cell state); the state lives in variable tensors that persist between invoke()
          calls, so one invoke per step streams (reset_all_variables / reset() starts a stream).
    GRU   TFLite has no fused GRU op and the converter crashes on the GRU layer's int8 conversion:
          an explicit-state step, inputs (x, h0, h1, ...), outputs (logits, new h0, new h1, ...), as
          RNN(unroll=True) over T = 1 (FULLY_CONNECTED / LOGISTIC / TANH / MUL / ADD); the caller
          passes the new state back in (it is quantized to int8 at each step).
"""

from __future__ import annotations

import contextlib
import importlib.metadata as md
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["TF_USE_LEGACY_KERAS"] = "1"  # tf.keras is tf_keras (the Keras 2 API whose LSTM the converter fuses)

import numpy as np  # noqa: E402

PACKAGES = ("tensorflow", "tf-keras", "tflite-micro", "numpy")
LOGITS = "decoder"  # the output layer's name: the logits among a step model's outputs


# ---- the Keras model --------------------------------------------------------------------------------

def build(keras, job: dict, w: dict, explicit_state: bool, steps: int | None = 1, batch: int | None = 1):
    """The model over `steps` steps at `batch` (None: any); explicit_state adds the state inputs h0, h1...
    and the new states as outputs after the logits (the GRU step model)."""
    features, hidden = job["features"], job["hidden"]
    rnn = keras.layers.LSTM if job["cell"] == "lstm" else keras.layers.GRU
    if features:
        inp = keras.Input(shape=(steps, features), batch_size=batch, dtype="float32", name="x")
        x = keras.layers.Dense(w["input_kernel"].shape[1], name="input_proj")(inp)
    else:
        inp = keras.Input(shape=(steps,), batch_size=batch, dtype="int32", name="x")
        x = keras.layers.Embedding(*w["embedding"].shape, name="embedding")(inp)
    states = [keras.Input(shape=(h,), batch_size=batch, name=f"h{k}") for k, h in enumerate(hidden)
              ] if explicit_state else []
    new_states, layers = [], []
    for k, h in enumerate(hidden):
        ly = rnn(h, return_sequences=True, return_state=explicit_state, unroll=explicit_state, name=f"rnn{k}",
                 **({"reset_after": True} if job["cell"] == "gru" else {}))
        layers.append(ly)
        if explicit_state:
            x, st = ly(x, initial_state=[states[k]])
            new_states.append(st)
        else:
            x = ly(x)
    if job.get("decoder_rank"):
        x = keras.layers.Dense(job["decoder_rank"], use_bias=False, name="decoder_proj")(x)
    logits = keras.layers.Dense(job["outputs"], name=LOGITS)(x)
    model = keras.Model([inp, *states], [logits, *new_states]) if explicit_state else keras.Model(inp, logits)
    if features:
        model.get_layer("input_proj").set_weights([w["input_kernel"], w["input_bias"]])
    else:
        model.get_layer("embedding").set_weights([w["embedding"]])
    for k, ly in enumerate(layers):
        ly.set_weights([w[f"rnn{k}_kernel"], w[f"rnn{k}_recurrent"], w[f"rnn{k}_bias"]])
    if job.get("decoder_rank"):
        model.get_layer("decoder_proj").set_weights([w["decoder_proj"]])
    model.get_layer(LOGITS).set_weights([w["decoder_kernel"], w["decoder_bias"]])
    return model


def step_input(x: np.ndarray, features: int) -> np.ndarray:
    """One step of a stream as the model's input (1, 1) int32 ids or (1, 1, F) float32."""
    return x.reshape(1, 1, features).astype(np.float32) if features else np.array([[int(x)]], np.int32)


def representative(keras, job: dict, w: dict, calib: np.ndarray, explicit_state: bool):
    """The calibration sequences as converter samples, one step each. Layer model: the steps in order
    (the converter's interpreter carries the LSTM state in its variables). Step model: each step with
    the float state before it (from the float model over the sequence, zero at its start)."""
    features = job["features"]
    samples = []
    if explicit_state:
        seq = build(keras, job, w, False, steps=None, batch=None)
        outs = keras.Model(seq.inputs, [seq.get_layer(f"rnn{k}").output for k in range(len(job["hidden"]))])
        every = outs(calib.astype(np.float32 if features else np.int32))  # per layer (S, T, H)
        every = [np.asarray(h) for h in (every if isinstance(every, list) else [every])]
        for i, s in enumerate(calib):  # s: (T,) or (T, F)
            hs = [h[i] for h in every]  # (T, H) per layer
            for t in range(len(s)):
                st = {f"h{k}": (h[t - 1:t] if t else np.zeros((1, h.shape[1]), np.float32)) for k, h in enumerate(hs)}
                samples.append({"x": step_input(s[t], features), **st})
    else:
        samples = [[step_input(x, features)] for s in calib for x in s]

    def gen():
        yield from samples
    return gen


def convert(tf, model, rep) -> bytes:
    """Full-integer int8 (TFLITE_BUILTINS_INT8: int8 weights and activations, int16 LSTM cell state), float I/O."""
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return conv.convert()


# ---- running it: TFLite Micro (or LiteRT's interpreter in TensorFlow) -------------------------------------

class Layout:
    """Positions of the model's inputs and outputs, read with tf.lite.Interpreter: x, the states, the logits."""

    def __init__(self, tf, tfl: bytes, n_states: int) -> None:
        plain = tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES  # no XNNPACK: the model's ops
        self.it = tf.lite.Interpreter(model_content=tfl, num_threads=1, experimental_op_resolver_type=plain)
        self.it.allocate_tensors()
        ins, outs = self.it.get_input_details(), self.it.get_output_details()
        self.x = next(p for p, d in enumerate(ins) if d["name"].split(":")[0].endswith("x"))
        self.state_in = [next(p for p, d in enumerate(ins) if re.search(rf"(^|_)h{k}(:0)?$", d["name"]))
                         for k in range(n_states)]
        sig = self.it.get_signature_runner()
        by_index = {d["index"]: p for p, d in enumerate(outs)}
        names = {n: by_index[d["index"]] for n, d in sig.get_output_details().items()}
        self.logits = names[next(n for n in names if n.startswith(LOGITS))]
        # tf_keras names the step model's state outputs rnn{k} (or rnn{k}_1...): layer k's new h
        self.state_out = [names[next(n for n in names if re.fullmatch(rf"rnn{k}(_\d+)?", n))] for k in range(n_states)]
        self.ops = sorted({o["op_name"] for o in self.it._get_ops_details()})
        self.in_shapes = [tuple(d["shape"]) for d in ins]

    def tensor_types(self) -> dict:
        counts: dict = {}
        for d in self.it.get_tensor_details():
            t = np.dtype(d["dtype"]).name
            counts[t] = counts.get(t, 0) + 1
        return counts


class Stream:
    """One step per invoke through an interpreter with TFLM's set_input / get_output by position."""

    def __init__(self, it, layout: Layout, features: int, reset) -> None:
        self.it, self.lay, self.features, self._reset = it, layout, features, reset
        self.state: list = []

    def reset(self) -> None:
        self._reset()
        self.state = [np.zeros(self.lay.in_shapes[p], np.float32) for p in self.lay.state_in]

    def step(self, x: np.ndarray) -> np.ndarray:
        self.it.set_input(step_input(x, self.features), self.lay.x)
        for p, s in zip(self.lay.state_in, self.state):
            self.it.set_input(s, p)
        self.it.invoke()
        self.state = [np.array(self.it.get_output(p)) for p in self.lay.state_out]
        return np.array(self.it.get_output(self.lay.logits)).reshape(-1)


class LiteRTPositions:
    """tf.lite.Interpreter behind TFLM's positional interface (the fallback without tflite_micro)."""

    def __init__(self, it) -> None:
        self.it = it
        self.ins, self.outs = it.get_input_details(), it.get_output_details()

    def set_input(self, value, p):
        self.it.set_tensor(self.ins[p]["index"], value)

    def get_output(self, p):
        return self.it.get_tensor(self.outs[p]["index"])

    def invoke(self):
        self.it.invoke()


@contextlib.contextmanager
def captured_fds(sink: list):
    """C-level stdout / stderr into sink (TFLite Micro prints its allocation report and errors there)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    with tempfile.TemporaryFile(mode="w+b") as f:
        for fd in saved:
            os.dup2(f.fileno(), fd)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, keep in saved.items():
                os.dup2(keep, fd)
                os.close(keep)
            f.seek(0)
            sink.append(f.read().decode(errors="replace"))


def arena_bytes(it) -> dict:
    """TFLite Micro's RecordingMicroAllocator report: the arena bytes this model used."""
    sink: list = []
    with captured_fds(sink):
        it.print_allocations()
    text = "".join(sink)
    got = {k: re.search(rf"Arena allocation {k} (\d+) bytes", text) for k in ("total", "head", "tail")}
    return {k: int(m.group(1)) if m else None for k, m in got.items()}


def run_streams(tf, tfl: bytes, streams: np.ndarray, features: int, n_states: int) -> tuple[np.ndarray, dict]:
    """Logits (n, steps, O) of every stream from the zero state, and the facts of the run."""
    lay = Layout(tf, tfl, n_states)
    facts = {"ops": lay.ops, "tensor_types": lay.tensor_types()}
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError as e:
        facts["tflite_micro"] = {"runs": None, "skipped": f"tflite-micro is not installed ({e}); checked with "
                                 "TensorFlow's tf.lite.Interpreter instead (pip install 'rnnslim[tflite]')"}
        it = lay.it
        run = Stream(LiteRTPositions(it), lay, features, it.reset_all_variables)
        facts["interpreter"] = "tf.lite.Interpreter"
    else:
        sink: list = []
        arena = max(1 << 20, 2 * len(tfl))
        try:
            with captured_fds(sink):
                it = runtime.Interpreter.from_bytes(tfl, arena_size=arena)
        except Exception as e:  # noqa: BLE001 - reported with what TFLM printed
            said = [ln.strip() for ln in "".join(sink).splitlines() if ln.strip()]
            raise RuntimeError(f"TFLite Micro does not run the model: {str(e).strip()}"
                               + (f" ({'; '.join(said[:2])})" if said else "")) from None
        run = Stream(it, lay, features, it.reset)
        facts["interpreter"] = "tflite_micro (reference kernels)"
        facts["tflite_micro"] = {"runs": True}
    logits = []
    for s in streams:
        run.reset()
        logits.append(np.stack([run.step(x) for x in s]))
    if facts["interpreter"].startswith("tflite_micro"):
        facts["tflite_micro"]["arena_bytes"] = arena_bytes(it)
        facts["tflite_micro"]["arena_note"] = ("RecordingMicroAllocator after the run on this 64-bit host; a 32-bit "
                                               "MCU's structs are smaller (pointers 4 bytes)")
    return np.stack(logits).astype(np.float32), facts


def float_logits(keras, job: dict, w: dict, streams: np.ndarray) -> np.ndarray:
    """(n, steps, O) of the float Keras model over each stream from the zero state (the layout check)."""
    seq = build(keras, job, w, False, steps=None, batch=None)
    return np.asarray(seq(streams.astype(np.float32 if job["features"] else np.int32))).astype(np.float32)


def versions() -> dict:
    out = {}
    for p in PACKAGES:
        try:
            out[p] = md.version(p)
        except md.PackageNotFoundError:
            out[p] = None
    return out


def main(job_dir: Path) -> None:
    t0 = time.perf_counter()
    import tensorflow as tf
    import tf_keras as keras

    seconds = {"import": round(time.perf_counter() - t0, 1)}
    tf.config.threading.set_intra_op_parallelism_threads(1)
    job = json.loads((job_dir / "job.json").read_text())
    with np.load(job_dir / "weights.npz") as z:
        w = {k: z[k] for k in z.files}
    explicit = job["cell"] == "gru"
    model = build(keras, job, w, explicit)
    rep = representative(keras, job, w, np.load(job_dir / "calibration.npy"), explicit)
    t0 = time.perf_counter()
    tfl = convert(tf, model, rep)
    seconds["convert"] = round(time.perf_counter() - t0, 1)
    (job_dir / "model.tflite").write_bytes(tfl)
    t0 = time.perf_counter()
    logits, facts = run_streams(tf, tfl, np.load(job_dir / "streams.npy"), job["features"],
                                len(job["hidden"]) if explicit else 0)
    seconds["run_streams"] = round(time.perf_counter() - t0, 1)
    np.save(job_dir / "logits.npy", logits)
    t0 = time.perf_counter()
    np.save(job_dir / "keras_float_logits.npy", float_logits(keras, job, w, np.load(job_dir / "streams.npy")))
    seconds["keras_float"] = round(time.perf_counter() - t0, 1)
    facts["child_seconds"] = seconds
    facts.update({"versions": versions(), "state": "explicit (caller carries h)" if explicit else
                  "variables inside the model (persist between invoke calls)"})
    (job_dir / "result.json").write_text(json.dumps(facts, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
