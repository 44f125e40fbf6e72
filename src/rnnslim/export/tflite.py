"""`rnnslim export --format tflite`: a full-integer int8 .tflite that TensorFlow Lite Micro runs.

    export_tflite(model, "out_dir", calibration=[x1, x2, ...])   # or rnnslim export M --format tflite --data F

The model's float weights (a quantized model's dequantized ones, dequantized.py) go into a tf_keras
model, which the TFLite converter quantizes with a representative data set (rnnslim's int8
calibration data: 8 training batches of 16 x 64 steps). All of TensorFlow runs in a child process
(tflite_child.py, run by path with this interpreter): a converter crash becomes one error naming
the cell and mode, and TensorFlow never loads next to torch. What the .tflite holds:

    LSTM  one UNIDIRECTIONAL_SEQUENCE_LSTM per layer (int8 weights / activations, int16 cell
          state), its state in variable tensors kept between invoke() calls: input x (1, 1) int32
          ids or (1, 1, F) float32, output logits (1, 1, O) float32; one invoke per step.
    GRU   an explicit-state step (TFLite has no fused GRU op; the GRU layer's int8 conversion
          crashes the converter): inputs x, h0, h1, ... (1, H) float32, outputs logits and the new
          h per layer, which the caller feeds back (quantized to int8 inside at every step).

The export directory holds NAME.tflite, tflite.json (the manifest: bytes, ops, tensor types,
the TFLite Micro arena, the check, versions) and rnnslim-export.json (destination.py's marker).

Checked on export against rnnslim's integer int8 model (the model itself when it is one, else an
integer-quantized copy calibrated on the same data) on `check_streams` random streams of 24 steps
(c_check.random_streams), run through TFLite Micro's interpreter (TensorFlow's tf.lite.Interpreter
when tflite-micro is absent): argmax agreement and max |logit difference|. The two int8 schemes
differ (TFLite: asymmetric int8 activations, per-channel weights, its own LSTM kernel; rnnslim:
symmetric codes, Q.12 gates, lookup tables), so outputs are close, not equal. The export fails when
argmax agreement < MIN_AGREEMENT (0.9): quantization differences move a few near-tie argmaxes,
while a wrong weight layout or a broken conversion agrees about as often as chance (1/O). The
float Keras model is also checked against rnnslim's float model on the same streams (max |diff|
<= FLOAT_TOL relative to the largest |logit|), which pins the weight layout exactly. The manifest's
noise_floor compares each int8 model with the float model on the same streams (random streams are
off the training distribution: argmax margins are small and int8 noise moves more of them).

Refused (ValueError): bidirectional layers, LSTM projections (proj_size), low-rank bottlenecks,
windowed inputs and input activations, readout "mean", tanh-RNN cells, delta thresholds.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from rnnslim.models.sequence import InputKind, Readout, SequenceModel, refuse_front_end
from rnnslim.recurrent.gates import CellType

MIN_AGREEMENT = 0.9
FLOAT_TOL = 1e-4  # float Keras vs float torch, relative to the largest |logit|
CHECK_STEPS = 24
CALIBRATION_BATCHES, CALIBRATION_BATCH, CALIBRATION_STEPS = 8, 16, 64  # as the int8_integer stage
CHILD = Path(__file__).with_name("tflite_child.py")
MANIFEST = "tflite.json"
NEEDS = ("tensorflow", "tf_keras")


class TFLiteExportError(RuntimeError):
    """The TFLite converter or TFLite Micro failed (crashed, refused the model, disagreed on the check)."""


# ---- what can be exported ---------------------------------------------------------------------------------

def check_tflite_exportable(model: SequenceModel) -> None:
    """ValueError naming what a .tflite of this model cannot hold (no TensorFlow needed)."""
    spec = model.spec
    what = "--format tflite"
    if spec.cell not in (CellType.LSTM, CellType.GRU):
        raise ValueError(f"{what} exports LSTM and GRU layers, not {spec.cell.value}; use --format c or onnx")
    for k, ly in enumerate(spec.layers):
        if ly.bidirectional:
            raise ValueError(f"{what} exports streaming models: layer {k} is bidirectional (it reads the sequence "
                             "backwards too); use --format c (whole sequences through NAME_run) or onnx")
        if ly.proj_size:
            raise ValueError(f"{what} does not support LSTM projections (layer {k} proj_size {ly.proj_size}): "
                             "TFLite's fused LSTM op takes none from Keras; use --format c-fp32 or onnx")
        if ly.input_rank:
            raise ValueError(f"{what} does not support low-rank bottlenecks (layer {k} input_rank "
                             f"{ly.input_rank}); multiply the factors back first or use --format onnx")
    refuse_front_end(spec, what)
    if spec.readout is Readout.MEAN:
        raise ValueError(f"{what} streams one step per invoke: readout 'mean' (an average over the whole "
                         "sequence) is not a step's output; use --format onnx")
    thresholds = [m for m in model.modules() if getattr(m, "delta_threshold", None) is not None]
    if thresholds:
        raise ValueError(f"{what} has no delta-network step: export the model without delta thresholds")


def _missing_packages() -> list[str]:
    return [p for p in NEEDS if importlib.util.find_spec(p) is None]


# ---- torch layout -> Keras layout -----------------------------------------------------------------------

def keras_weights(model: SequenceModel) -> dict[str, np.ndarray]:
    """The float model's tensors in the Keras layouts tflite_child.py expects (its docstring).
    LSTM gates i,f,g,o are Keras's i,f,c,o; GRU blocks r,z,n become Keras's z,r,h with
    reset_after=True and bias [b_ih; b_hh] (2, 3H)."""
    sd = {k: v.detach().float().cpu().numpy() for k, v in model.state_dict().items()}
    w: dict[str, np.ndarray] = {}
    if model.spec.input_kind is InputKind.EMBEDDING:
        w["embedding"] = sd["embedding.weight"]  # (V, E)
    elif model.spec.input_kind is InputKind.LINEAR:
        w["input_kernel"], w["input_bias"] = sd["input_proj.weight"].T.copy(), sd["input_proj.bias"]  # (F, E)
    else:  # identity: an exact identity Dense keeps one Keras graph for every feature model
        E = model.spec.embed_size
        w["input_kernel"], w["input_bias"] = np.eye(E, dtype=np.float32), np.zeros(E, np.float32)
    for k, ly in enumerate(model.spec.layers):
        p = f"rnn.layers.{k}."
        wi, wh = sd[p + "weight_ih_l0"], sd[p + "weight_hh_l0"]  # (G*H, in), (G*H, H)
        zeros = np.zeros(wi.shape[0], np.float32)
        bi, bh = sd.get(p + "bias_ih_l0", zeros), sd.get(p + "bias_hh_l0", zeros)
        if model.spec.cell is CellType.LSTM:
            w[f"rnn{k}_kernel"], w[f"rnn{k}_recurrent"], w[f"rnn{k}_bias"] = wi.T.copy(), wh.T.copy(), bi + bh
        else:
            H = ly.hidden_size
            order = np.r_[H:2 * H, 0:H, 2 * H:3 * H]  # r,z,n -> z,r,n
            w[f"rnn{k}_kernel"], w[f"rnn{k}_recurrent"] = wi[order].T.copy(), wh[order].T.copy()
            w[f"rnn{k}_bias"] = np.stack([bi[order], bh[order]])
    if model.spec.decoder_rank:
        w["decoder_proj"] = sd["decoder_proj.weight"].T.copy()  # (P, r)
    w["decoder_kernel"], w["decoder_bias"] = sd["decoder.weight"].T.copy(), sd["decoder.bias"]
    return w


def _job(model: SequenceModel) -> dict:
    spec = model.spec
    return {"cell": spec.cell.value, "features": 0 if spec.input_kind is InputKind.EMBEDDING else spec.input_size,
            "hidden": [ly.hidden_size for ly in spec.layers], "outputs": spec.output_size,
            "decoder_rank": spec.decoder_rank}


# ---- data ------------------------------------------------------------------------------------------------

def calibration_inputs(model: SequenceModel, calibration=None) -> list[torch.Tensor]:
    """Model inputs (T, B) / (T, B, F) to calibrate on: `calibration` (inputs, or a Task), else the
    model's recorded task with its default data (rnnslim.tasks.task_for_model)."""
    from rnnslim.tasks.base import Task

    if calibration is None:
        from rnnslim.tasks import task_for_model

        try:
            calibration = task_for_model(model)
        except (ValueError, FileNotFoundError, ImportError) as e:
            raise ValueError(f"--format tflite needs calibration data (the TFLite converter's representative "
                             f"data set) and the model's task gives none by default ({e}); give --data (and "
                             "--task) as for `rnnslim eval`, or calibration=[inputs...]") from None
    if isinstance(calibration, Task):
        calibration = [b.inputs for b in calibration.calibration_batches(
            CALIBRATION_BATCHES, CALIBRATION_BATCH, CALIBRATION_STEPS)]
    inputs = [torch.as_tensor(x).cpu() for x in calibration]
    if not inputs:
        raise ValueError("--format tflite: the calibration data is empty")
    return inputs


def _as_sequences(inputs: list[torch.Tensor], features: int) -> np.ndarray:
    """(T, B[, F]) batches -> (S, T[, F]) sequences (one per batch column), all cut to the shortest T."""
    seqs = [x.transpose(0, 1) for x in inputs]  # (B, T[, F])
    T = min(s.shape[1] for s in seqs)
    out = torch.cat([s[:, :T] for s in seqs])
    return out.float().numpy() if features else out.long().numpy()


# ---- the reference: rnnslim's integer int8 model ---------------------------------------------------------

def integer_reference(model: SequenceModel, float_model: SequenceModel, inputs: list[torch.Tensor]):
    """`model` when it is integer int8, else an integer-quantized copy of the float model."""
    import copy

    from rnnslim.export.dequantized import is_integer_model
    from rnnslim.quantize.int8 import Int8Config, Int8Mode, quantize_int8_

    if is_integer_model(model):
        return model
    ref = copy.deepcopy(float_model)
    return quantize_int8_(ref, Int8Config(mode=Int8Mode.INTEGER), calibration=inputs)


def integer_logits(ref: SequenceModel, streams: np.ndarray, features: int) -> np.ndarray:
    """Per-step logits (n, steps, O) of IntegerRunner over each stream from the zero state."""
    from rnnslim.quantize.int8.runner import IntegerRunner

    runner = IntegerRunner(ref, fold_embedding=False)
    out = []
    for s in streams:
        state = runner.init_state()
        step = runner.step_features if features else runner.step
        out.append(np.stack([step(torch.from_numpy(x) if features else int(x), state).numpy().copy() for x in s]))
    return np.stack(out).astype(np.float32)


@torch.no_grad()
def float_logits(model: SequenceModel, streams: np.ndarray, features: int) -> np.ndarray:
    """(n, steps, O) of the float torch model: every step's decoder output, whatever its readout."""
    x = torch.from_numpy(streams).transpose(0, 1)  # (steps, n[, F])
    h, _ = model.rnn(model.encode(x.float() if features else x.long()))
    if model.spec.decoder_rank:
        h = model.decoder_proj(h)
    return model.decoder(h).transpose(0, 1).numpy()


def compare(got: np.ndarray, want: np.ndarray) -> dict:
    return {"argmax_agreement": float(np.mean(got.argmax(-1) == want.argmax(-1))),
            "max_abs_logit_diff": float(np.abs(got - want).max()),
            "mean_abs_logit_diff": float(np.abs(got - want).mean()),
            "reference_logit_range": [float(want.min()), float(want.max())]}


# ---- the child ----------------------------------------------------------------------------------------------

def _one_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    hit = [ln for ln in lines if re.search(r"error|not supported|failed|refus", ln, re.I)]
    return (hit[-1] if hit else lines[-1] if lines else "no message")[:400]


def run_child(job_dir: Path, what: str, timeout: int) -> dict:
    """Run tflite_child.py on job_dir; its result.json, or TFLiteExportError naming `what` (cell and mode)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TF_USE_LEGACY_KERAS": "1", "CUDA_VISIBLE_DEVICES": ""}
    try:
        p = subprocess.run([sys.executable, str(CHILD), str(job_dir)], capture_output=True, text=True,
                           timeout=timeout, env=env, cwd=job_dir)
    except subprocess.TimeoutExpired:
        raise TFLiteExportError(f"converting {what} to .tflite did not finish in {timeout} s; nothing was "
                                "written") from None
    if p.returncode < 0:
        sig = {-11: "segmentation fault", -6: "aborted", -9: "killed"}.get(p.returncode, f"signal {-p.returncode}")
        raise TFLiteExportError(f"the TFLite converter or TFLite Micro crashed ({sig}) on {what}; nothing was "
                                "written")
    if p.returncode != 0 or not (job_dir / "result.json").is_file():
        raise TFLiteExportError(f"TensorFlow could not make {what}: {_one_line(p.stderr or p.stdout)}; "
                                "nothing was written")
    return json.loads((job_dir / "result.json").read_text())


# ---- the export ----------------------------------------------------------------------------------------------

def export_tflite(model: SequenceModel, out, name: str | None = None, calibration=None, check_streams: int = 100,
                  timeout: int = 1800) -> dict:
    """Write out/NAME.tflite (+ tflite.json) atomically, checked against the integer int8 model; returns
    the manifest. `calibration`: model inputs (T, B[, F]) or a Task (default: the model's task)."""
    from rnnslim.export.c_check import random_streams
    from rnnslim.export.dequantized import dequantized_copy
    from rnnslim.export.destination import check_destination, export_directory

    t0 = time.perf_counter()
    check_destination(out, "tflite", model)
    check_tflite_exportable(model)
    missing = _missing_packages()
    if missing:
        raise ImportError(f"--format tflite needs {' and '.join(missing)} (run in a child process): "
                          "pip install 'rnnslim[tflite]'")
    name = name or "model"
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,100}", name) or name.startswith("."):
        raise ValueError(f"--name {name!r}: use letters, digits, '_', '-' and '.' (the file is NAME.tflite)")
    job = _job(model)
    what = f"the {job['cell'].upper()} model ({'explicit-state step' if job['cell'] == 'gru' else 'fused layer'}, " \
           "full-integer int8)"
    float_model, dequantized = dequantized_copy(model)
    float_model = float_model.to("cpu").eval()  # a copy: the user's model stays where it is
    inputs = calibration_inputs(model, calibration)
    streams = random_streams(model.spec.input_size, max(check_streams, 1), CHECK_STEPS, features=job["features"])
    with tempfile.TemporaryDirectory(prefix="rnnslim-tflite-") as tmp:
        jd = Path(tmp)
        (jd / "job.json").write_text(json.dumps(job))
        np.savez(jd / "weights.npz", **keras_weights(float_model))
        np.save(jd / "calibration.npy", _as_sequences(inputs, job["features"]))
        np.save(jd / "streams.npy", streams)
        t_child = time.perf_counter()
        facts = run_child(jd, what, timeout)
        facts.setdefault("child_seconds", {})["total"] = round(time.perf_counter() - t_child, 1)
        tfl = (jd / "model.tflite").read_bytes()
        got = np.load(jd / "logits.npy")
        keras_float = np.load(jd / "keras_float_logits.npy")
    ref = integer_reference(model, float_model, inputs)
    want = integer_logits(ref, streams, job["features"])
    fl = float_logits(float_model, streams, job["features"])
    layout = float(np.abs(keras_float - fl).max() / max(float(np.abs(fl).max()), 1e-6))
    check = {"streams": int(len(streams)), "steps": CHECK_STEPS, "against": "rnnslim integer int8 (IntegerRunner)"
             + ("" if ref is model else ", quantized from the same float weights and calibration data"),
             "run_with": facts.pop("interpreter"), **compare(got, want), "min_argmax_agreement": MIN_AGREEMENT,
             "keras_float_vs_rnnslim_float_relative_max_diff": layout,
             # the scale of int8 noise on these streams: each int8 model against rnnslim's float model
             "noise_floor": {"tflite_vs_float": compare(got, fl), "rnnslim_int8_vs_float": compare(want, fl)}}
    check["ok"] = check["argmax_agreement"] >= MIN_AGREEMENT and layout <= FLOAT_TOL
    manifest = {"format": "tflite", "file": f"{name}.tflite", "tflite_bytes": len(tfl), "cell": job["cell"],
                "quantization": "full-integer int8 (TFLITE_BUILTINS_INT8), float32 input / output",
                "state": facts.pop("state"), "calibration": {"sequences": int(sum(x.shape[1] for x in inputs)),
                                                             "steps_each": int(min(x.shape[0] for x in inputs))},
                "dequantized_layers": dequantized, **facts, "check": check}
    if not check["ok"]:
        why = [f"argmax agreement {check['argmax_agreement']:.3f} < {MIN_AGREEMENT}"] \
            if check["argmax_agreement"] < MIN_AGREEMENT else []
        if layout > FLOAT_TOL:
            why.append(f"the float Keras model differs from rnnslim's by {layout:.2e} > {FLOAT_TOL}")
        raise TFLiteExportError(f"the .tflite of {what} disagrees with rnnslim's model on the check "
                                f"({'; '.join(why)}); nothing was written: please report this as a bug")
    out = Path(out)
    with export_directory(out, "tflite", model) as staging:
        (staging / f"{name}.tflite").write_bytes(tfl)
        manifest["seconds"] = round(time.perf_counter() - t0, 1)
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return {"out": str(out), **manifest}


__all__ = ["MIN_AGREEMENT", "TFLiteExportError", "check_tflite_exportable", "export_tflite", "keras_weights"]
