"""Your model to the device (issue 20): users' own LSTM / GRU models, and Keras / ONNX ones,
captured or imported, made fully integer int8, exported to C and checked on the targets.

    nice -n 10 .venv/bin/python benchmarks/your_model_to_device.py            # all models
    nice -n 10 .venv/bin/python benchmarks/your_model_to_device.py --only kws sensor

Models (benchmarks/foreign_models.py, written as users write them; trained briefly here on
real data, benchmarks/foreign_data.py; weights cached in benchmarks/runs/your_model_to_device/):
    lm_untied / lm_tied  the PyTorch examples' word LM (Embedding 128 -> 2-layer LSTM 128 -> Linear,
                         forward(input, hidden), log_softmax), Tiny Shakespeare words, 2000 + <unk>
    kws                  frames of 12 features -> GRU 64 -> Linear, last step (aeon JapaneseVowels)
    crnn                 Conv1d(6, 16, k=5) -> ReLU -> GRU 32 -> Linear (aeon BasicMotions)
    sensor               6 motion channels -> LSTM 32 -> Linear (aeon BasicMotions)
    tagger               bidirectional GRU 48 over characters, word-boundary tags (Tiny Shakespeare)
    keras                keras.Sequential Input -> LSTM 32 -> Dense, Keras 3 on the torch backend,
                         saved .keras, rnnslim.interop.keras.import_keras (JapaneseVowels)
    onnx                 a torch LSTM 48 classifier through torch.onnx.export, rnnslim.interop.onnx_import
                         .import_onnx (JapaneseVowels)

Columns per model (benchmarks/device_cells.py):
    float parity   max |y - y_user| / max |y_user| of the captured / imported float model against the
                   user's module (Keras model, ONNX Runtime session) on held-out inputs; target <= 1e-5
    int8 integer   the task metric of the fully integer model as it runs on the device (IntegerRunner,
                   bit-identical to the C export) vs the user's float model on the test split: accuracy
                   (target: at most 1 point lower) or LM test loss, one stream, batch 1, state carried
                   (target: at most +1 %); noise: one test sequence in points / paired block SE of the loss
    C bit-exact    export_model(q, "c") then host x86-64 (-O3 -march=native), Cortex-M4 (QEMU mps2-an386)
                   and AArch64 (qemu-aarch64, NEON), hashes of every output and state vs IntegerRunner
    flash / RAM    Cortex-M4 model object (arm-none-eabi-size: text + data) and the manifest's bytes
    latency        C kernel vs ONNX Runtime int8 of the same model, 1 thread, same run, two alternating
                   rounds of median-of-5 (step at batch 1 for streaming models, one 64-step window for
                   the bidirectional tagger); the band is the range of ratios the round spreads allow
A cell that fails holds the exception's one-line message ("refused: ..." for a ValueError: rnnslim
declining with its reason), never a traceback and never a made-up number.
Writes benchmarks/results/your_model_to_device.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, update_results  # noqa: E402
from device_cells import (  # noqa: E402
    c_export_cells,
    cell_error,
    flash_ram,
    integer_copy,
    rel_max_error,
    step_latency,
    window_latency,
)
from foreign_data import (  # noqa: E402
    CACHE,
    aeon_set,
    boundary_corpus,
    train_classifier,
    train_tagger,
    train_word_lm,
    windows,
    word_corpus,
)
from foreign_models import (  # noqa: E402
    CRNN,
    BoundaryTagger,
    KeywordGRU,
    LSTMClassifier,
    SensorLSTM,
    keras_lstm_classifier,
    word_lm,
)

PARITY_TARGET = 1e-5
ACCURACY_POINTS = 0.01
LOSS_REL = 0.01


@dataclass
class Case:
    """One foreign model: how rnnslim gets it, how the user runs it, and how it is scored."""

    key: str
    label: str
    data: str
    training: dict
    to_rnnslim: Callable[[], torch.nn.Module]  # capture / import -> float SequenceModel
    parity: Callable[[torch.nn.Module], float]  # SequenceModel -> max relative error vs the user's model
    float_metric: Callable[[], dict]  # the user's model on the test split
    int_metric: Callable[[object], dict]  # IntegerRunner -> the same metric
    metric: str  # "accuracy" or "loss"
    calibration: list[torch.Tensor]  # time-major batches
    via: str  # "capture" / "import_keras" / "import_onnx"
    user_module: torch.nn.Module | None = None
    window: torch.Tensor | None = None  # ids (T,) or features (T, F) of a whole-window latency (bidirectional
    # models, a CRNN's windowed input: no streaming step)
    user_loop: tuple | None = None  # (inputs, targets) of the test split in the user's layout: accuracy of the
    # integer model through rnnslim.capture.evaluate (the user's own loop), cross-checked with IntegerRunner
    notes: list[str] = field(default_factory=list)


# --- the rnnslim side ---------------------------------------------------------------------------
def _capture_api():
    from rnnslim.capture import capture, user_view  # noqa: F401  (the names the issue's users call)

    return capture, user_view


def _first(y):
    return y[0] if isinstance(y, tuple) else y


def captured(module, example_inputs: tuple):
    return lambda: _capture_api()[0](module, example_inputs)


def captured_parity(module, inputs: tuple):
    def parity(seq) -> float:
        view = _capture_api()[1](seq).eval()
        with torch.no_grad():
            return rel_max_error(_first(view(*inputs)), _first(module(*inputs)))

    return parity


def _accuracy(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (out.argmax(-1) == target).float().mean()


def user_loop_accuracy(model_q, test: tuple) -> dict:
    """The integer model's accuracy through evaluate() (user_view, torch's integer reference)."""
    from rnnslim.capture import evaluate

    return {"accuracy": evaluate(model_q, lambda: [test], _accuracy)}


def time_major_out(seq, x_batch_first: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return seq.eval()(x_batch_first.transpose(0, 1))[0]


# --- metrics ----------------------------------------------------------------------------------------
def accuracy_row(pred: torch.Tensor, y: torch.Tensor, unit: str) -> dict:
    return {"value": float((pred == y).float().mean()), "n": int(y.numel()), "unit": unit,
            "pred": pred.reshape(-1)}


def lm_user_nll(m, d: torch.Tensor) -> torch.Tensor:
    """Per-token NLL of d[1:] given d[:-1] with the user's own forward, batch 1, hidden carried."""
    hidden, out = m.init_hidden(1), []
    with torch.no_grad():
        for x, y in zip(d[:-1].split(1024), d[1:].split(1024)):
            logp, hidden = m(x[:, None], hidden)
            out.append(-logp.gather(1, y[:, None])[:, 0])
    return torch.cat(out)


def lm_int_nll(runner, d: torch.Tensor) -> torch.Tensor:
    logits, _ = runner.run(d[:-1])
    return F.cross_entropy(logits, d[1:], reduction="none")


def classify_int(runner, x: torch.Tensor) -> torch.Tensor:
    """Predicted classes of the integer model, one whole sequence (T, F) per call."""
    return torch.stack([runner.run_sequence(s).argmax() for s in x])


def user_accuracy(model, x: torch.Tensor, y: torch.Tensor) -> dict:
    with torch.no_grad():
        return accuracy_row(model(x).argmax(-1), y, "sequences")


def int8_row(case: Case, flt: dict, integer: dict) -> dict:
    if case.metric == "loss":
        a, b = flt.pop("per_token"), integer.pop("per_token")
        blocks = torch.stack([(bb - aa).mean() for aa, bb in zip(a.chunk(20), b.chunk(20))])
        f, q = float(a.mean()), float(b.mean())
        return {"metric": "test loss (nats/word)", "float": f, "integer": q, "change_rel": q / f - 1,
                "within": q <= f * (1 + LOSS_REL), "target": "<= +1 % of float", "tokens": int(a.numel()),
                "noise": {"paired_block_se_nats": float(blocks.std() / math.sqrt(len(blocks))), "blocks": 20},
                "float_ppl": math.exp(f), "integer_ppl": math.exp(q)}
    changed = int((flt.pop("pred") != integer.pop("pred")).sum())
    f, q = flt["value"], integer["value"]
    return {"metric": f"accuracy ({flt['unit']})", "float": f, "integer": q, "change_points": 100 * (q - f),
            "within": q >= f - ACCURACY_POINTS - 1e-9, "target": ">= float - 1 point", "n": flt["n"],
            "predictions_changed": changed, "noise": {"one_item_points": 100 / flt["n"]}}


# --- the cases ---------------------------------------------------------------------------------
def lm_case(tied: bool) -> Case:
    corpus = word_corpus()
    V = len(corpus.words)
    key = f"lm_{'tied' if tied else 'untied'}"
    model, rec = train_word_lm(key, word_lm(V, 128, 128, 2, tie_weights=tied), corpus)
    ex = (corpus.valid[:35 * 4].view(4, 35).t().contiguous(), model.init_hidden(4))
    held = (corpus.valid[1000:1000 + 35 * 8].view(8, 35).t().contiguous(), model.init_hidden(8))
    g = torch.Generator().manual_seed(5)
    starts = torch.randint(0, corpus.train.numel() - 36, (8, 16), generator=g)
    calib = [corpus.train[s[None, :] + torch.arange(35)[:, None]] for s in starts]  # 8 x (35, 16)
    d = corpus.test
    return Case(key, f"word LM, LSTM 2x128, {'tied' if tied else 'untied'} (PyTorch examples shape)",
                f"Tiny Shakespeare words, vocabulary {V - 1} + <unk>, test {d.numel():,} tokens", rec,
                captured(model, ex), captured_parity(model, held),
                lambda: {"per_token": lm_user_nll(model, d)},
                lambda r: {"per_token": lm_int_nll(r, d)}, "loss", calib, "capture", model)


def series_case(key: str, label: str, data, module_cls, epochs: int, whole_window: bool = False, **kw) -> Case:
    model, rec = train_classifier(key, module_cls(**kw), data, epochs)
    calib = [b.transpose(0, 1) for b in data.x_train.split(64)]
    return Case(key, label, f"aeon {data.name}: {len(data.y_train)} train / {len(data.y_test)} test sequences, "
                f"{data.x_train.shape[2]} channels, {len(data.classes)} classes", rec,
                captured(model, (data.x_train[:8],)), captured_parity(model, (data.x_test[:64],)),
                lambda: user_accuracy(model, data.x_test, data.y_test),
                lambda r: accuracy_row(classify_int(r, data.x_test), data.y_test, "sequences"),
                "accuracy", calib, "capture", model, user_loop=(data.x_test, data.y_test),
                window=data.x_test[0] if whole_window else None)


def tagger_case() -> Case:
    corpus = boundary_corpus()
    model, rec = train_tagger("tagger", BoundaryTagger(len(corpus.chars)), corpus)
    test_w, test_t = windows(corpus.x["test"], 64), windows(corpus.tags["test"], 64)
    valid_w = windows(corpus.x["valid"], 64)
    calib = [b.t().contiguous() for b in windows(corpus.x["train"][:64 * 128], 64).split(16)]  # 8 x (64, 16)

    def user_acc():
        with torch.no_grad():
            return accuracy_row(model(test_w).argmax(-1), test_t, "characters")

    def int_acc(r):
        return accuracy_row(torch.stack([r.run_sequence(w).argmax(-1) for w in test_w]), test_t, "characters")

    return Case("tagger", "bidirectional GRU 48 tagger (word boundaries)",
                f"Tiny Shakespeare characters without whitespace, tag = word end; test {test_t.numel():,} "
                f"characters in windows of 64", rec, captured(model, (valid_w[:4],)),
                captured_parity(model, (valid_w[4:20],)), user_acc, int_acc, "accuracy", calib, "capture",
                model, window=test_w[0], user_loop=(test_w, test_t))


def keras_case(data) -> Case:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    path = CACHE / "keras_lstm.keras"
    t0 = time.perf_counter()
    import keras

    record = CACHE / "keras_lstm.json"
    if path.is_file() and record.is_file():
        km = keras.saving.load_model(str(path), compile=False, safe_mode=True)
        rec = {**json.loads(record.read_text()), "cached": True}
    else:
        keras.utils.set_random_seed(0)
        km = keras_lstm_classifier(data.x_train.shape[1], data.x_train.shape[2], len(data.classes))
        km.compile(optimizer=keras.optimizers.Adam(3e-3),
                   loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        hist = km.fit(data.x_train.numpy(), data.y_train.numpy(), epochs=40, batch_size=32, verbose=0)
        CACHE.mkdir(parents=True, exist_ok=True)
        km.save(str(path))
        rec = {"epochs": 40, "batch": 32, "optimizer": "Adam lr 0.003 (model.fit)",
               "final_train_loss": round(float(hist.history["loss"][-1]), 4),
               "seconds": round(time.perf_counter() - t0, 1), "keras": keras.__version__, "backend": "torch"}
        record.write_text(json.dumps(rec))
        rec["cached"] = False

    def keras_out(x: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(np.asarray(km.predict(x.numpy(), verbose=0)))

    def to_rnnslim():
        from rnnslim.interop.keras import import_keras

        return import_keras(path)

    return imported_classifier_case("keras", "Keras Sequential LSTM 32 (.keras, Keras 3, torch backend)", data, rec,
                                    to_rnnslim, keras_out, "import_keras")


def imported_classifier_case(key: str, label: str, data, rec: dict, to_rnnslim, reference_out, via: str) -> Case:
    """A classifier that rnnslim imports from a file: scored against `reference_out` (x batch first -> logits),
    the framework that wrote the file."""
    return Case(key, label, f"aeon {data.name}: {len(data.y_train)} train / {len(data.y_test)} test sequences",
                rec, to_rnnslim,
                lambda seq: rel_max_error(time_major_out(seq, data.x_test[:64]), reference_out(data.x_test[:64])),
                lambda: accuracy_row(reference_out(data.x_test).argmax(-1), data.y_test, "sequences"),
                lambda r: accuracy_row(classify_int(r, data.x_test), data.y_test, "sequences"),
                "accuracy", [b.transpose(0, 1) for b in data.x_train.split(64)], via)


def onnx_case(data, work: Path) -> Case:
    from rnnslim.export.onnx import ort_session

    model, rec = train_classifier("onnx_lstm", LSTMClassifier(), data, epochs=40)
    path = work / "lstm_classifier.onnx"
    with torch.no_grad():
        torch.onnx.export(model, (data.x_train[:1],), str(path), input_names=["x"], output_names=["logits"],
                          dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False, opset_version=17)
    sess = ort_session(path, threads=1)

    def ort_out(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(sess.run(None, {"x": x.numpy()})[0])

    def to_rnnslim():
        from rnnslim.interop.onnx_import import import_onnx

        return import_onnx(path)

    rec = {**rec, "export": "torch.onnx.export(dynamo=False, opset 17), batch dynamic"}
    return imported_classifier_case("onnx", "ONNX LSTM 48 classifier (torch.onnx.export, imported)", data, rec,
                                    to_rnnslim, ort_out, "import_onnx")


ORDER = ("lm_untied", "lm_tied", "kws", "crnn", "sensor", "tagger", "keras", "onnx")


def make_cases(only: list[str] | None, work: Path):
    vowels, motions = aeon_set("JapaneseVowels"), aeon_set("BasicMotions")
    makers = {
        "lm_untied": lambda: lm_case(False),
        "lm_tied": lambda: lm_case(True),
        "kws": lambda: series_case("kws", "keyword-spotting GRU 64, last step", vowels, KeywordGRU, 60),
        "crnn": lambda: series_case("crnn", "CRNN: Conv1d k=5 -> ReLU -> GRU 32", motions, CRNN, 150,
                                    whole_window=True),  # the Conv1d (padding 2) reads 2 later frames: NAME_run
        "sensor": lambda: series_case("sensor", "sensor LSTM 32, last step", motions, SensorLSTM, 150),
        "tagger": tagger_case,
        "keras": lambda: keras_case(vowels),
        "onnx": lambda: onnx_case(vowels, work),
    }
    for key in ORDER:
        if not only or key in only:
            yield key, makers[key]


# --- one row ---------------------------------------------------------------------------------------
def _try(cells: dict, name: str, fn, blocked: str | None, label: str | None = None):
    """cells[name] = fn() or its one-line failure. Returns (value, None), or (None, why the later
    cells are not run): the failure text prefixed by `label` (default `name`)."""
    label = label or name
    if blocked:
        cells[name] = {"cell": f"not run: {blocked}"}
        return None, blocked
    try:
        value = fn()
    except ImportError as e:
        cells[name] = {"cell": f"not run: {label} unavailable ({str(e).splitlines()[0][:200]})"}
        return None, f"{label} unavailable"
    except Exception as e:  # the cell records what happened, in one line
        cells[name] = {"cell": cell_error(e)}
        return None, f"{label} {cells[name]['cell']}"
    cells[name] = value if isinstance(value, dict) else {"value": value}
    return value, None


def run_case(case: Case, work: Path) -> dict:
    t0 = time.perf_counter()
    row = {"key": case.key, "model": case.label, "data": case.data, "via": case.via, "training": case.training}
    cells: dict = {}
    seq, blocked = _try(cells, "rnnslim_model", case.to_rnnslim, None, case.via)
    if seq is not None:
        cells["rnnslim_model"] = {"spec": seq.spec.model_dump(mode="json"),
                                  "capture_info": _info(getattr(seq, "capture_info", None))}
        print(f"{case.key}: {case.via} ok", flush=True)
    par, _ = _try(cells, "parity", lambda: case.parity(seq), blocked)
    if par is not None:
        cells["parity"] = {"rel_max_error": par, "within": par <= PARITY_TARGET, "target": PARITY_TARGET}
    q, q_blocked = _try(cells, "int8", lambda: integer_copy(seq, case.calibration), blocked, "int8 integer")
    if q is not None:
        model_q, runner = q
        row_int8, _ = _try(cells, "int8", lambda: int8_row(case, case.float_metric(), case.int_metric(runner)), None)
        if row_int8 is not None and case.user_loop is not None:
            loop, _ = _try(row_int8, "user_loop", lambda: user_loop_accuracy(model_q, case.user_loop), None)
            if loop is not None:
                loop["same_as_integer_runner"] = abs(loop["accuracy"] - row_int8["integer"]) < 1e-6
    c, c_blocked = _try(cells, "c_export", lambda: c_export_cells(model_q, runner, work, f"m_{case.key}"), q_blocked,
                        "C export")
    cells["flash_ram"] = flash_ram(c) if c is not None else {"cell": f"not run: {c_blocked}"}
    if case.window is not None:
        _try(cells, "latency", lambda: window_latency(case.user_module, runner, case.window, work, case.key), q_blocked)
    else:
        _try(cells, "latency", lambda: step_latency(seq, runner, work, case.key), q_blocked)
    row["cells"] = cells
    row["seconds"] = round(time.perf_counter() - t0, 1)
    print(f"{case.key}: {summary(cells)} ({row['seconds']} s)", flush=True)
    return row


def _info(info):
    if info is None:
        return None
    return info.model_dump(mode="json") if hasattr(info, "model_dump") else str(info)


def summary(cells: dict) -> str:
    p, i, c, lat = (cells.get(k, {}) for k in ("parity", "int8", "c_export", "latency"))
    parts = [f"parity {p['rel_max_error']:.2e}" if "rel_max_error" in p else p.get("cell", "?"),
             f"int8 {i['float']:.4f} -> {i['integer']:.4f}" if "integer" in i else i.get("cell", "?"),
             "C " + " ".join(f"{t}={v.get('bit_exact', v.get('error', v.get('skipped')))}"
                             for t, v in c.get("targets", {}).items() if t in ("host", "cortex-m4", "aarch64"))
             if "targets" in c else c.get("cell", "?"),
             f"speedup {lat['speedup_c_over_ort']:.2f}x" if "speedup_c_over_ort" in lat else lat.get("cell", "?")]
    return " | ".join(str(s)[:160] for s in parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", help="model keys (default: all)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="your_model_to_device_"))
    rows = []
    try:
        for key, make in make_cases(args.only, work):
            try:
                case = make()
            except Exception as e:  # the model could not even be built / trained: say so, keep going
                rows.append({"key": key, "cells": {}, "error": cell_error(e)})
                print(f"{key}: {cell_error(e)}", flush=True)
                continue
            rows.append(run_case(case, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = RESULTS / "your_model_to_device.json"
    result = {"rows": rows, "threads": 1, "seconds": round(time.perf_counter() - t0, 1),
              "targets": {"parity_rel": PARITY_TARGET, "accuracy_points": 100 * ACCURACY_POINTS,
                          "loss_rel": LOSS_REL}}
    if args.only:  # a partial run keeps the other models' rows of the last full run
        old = json.loads(out.read_text()).get("result", {}) if out.exists() else {}
        keep = [r for r in old.get("rows", []) if r.get("key") not in set(args.only)]
        order = {k: i for i, k in enumerate(ORDER)}
        result["rows"] = sorted(keep + rows, key=lambda r: order.get(r.get("key"), len(order)))
        result["partial_reruns"] = [*old.get("partial_reruns", []), {"only": args.only, "seconds": result["seconds"]}]
        result["seconds"] = old.get("seconds", result["seconds"])  # the last full run's
    update_results(out, "result", result)
    print(f"wrote {out} in {result['seconds']} s")


if __name__ == "__main__":
    main()
