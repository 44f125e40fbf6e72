"""rnnslim's side of the peer table for the "your model to the device" classifiers (issue 21).

reference_outputs.py hands over here when --model names one of CLASSIFIERS (so the peer scripts'
peer_common.rnnslim_reference / interleaved_latency work unchanged). The classifier is the user's torch
module of benchmarks/your_model_to_device.py (benchmarks/foreign_models.py), trained there on aeon's
data (benchmarks/foreign_data.py; weights cached in benchmarks/runs/your_model_to_device/, trained here
when missing). Written into --out for a peer venv without torch:

    weights.safetensors  the module's tensors in torch layout under fixed names: rnn.weight_ih_l0,
                         rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0 (one layer), head.weight, head.bias
    x_train.npy, x_test.npy   float32 (N, T, F), batch first, already standardised (each channel with the
                         training mean / std, foreign_data.aeon_set) and front-padded with zeros to T
    y_train.npy, y_test.npy   int64 (N,) class ids
    ids.npy              = y_test (peer_common.rnnslim_reference loads it under that name)
    parity_logits.npy    float32 (N_test, classes): the user's fp32 module on x_test
    reference.json       spec {cell, hidden_size, features, classes, steps}, the standardisation note and
                         rows: fp32 (the user's module in torch) and int8 fully integer (capture ->
                         quantize_int8_ INTEGER calibrated on the training set -> IntegerRunner, the C
                         kernel): test accuracy, artifact bytes, C export flash / RAM, latency of one
                         whole-sequence inference (T steps from the zero state, then the class logits) at
                         batch 1, 1 thread (time_stream: median of 5 rounds x 50 after 5 warm-up)
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

from device_cells import integer_copy
from foreign_data import aeon_set, train_classifier
from foreign_models import KeywordGRU, LSTMClassifier, SensorLSTM

from rnnslim.capture import capture
from rnnslim.export.c_source import export_c
from rnnslim.io.format import artifact_bytes, save_model
from rnnslim.measure.latency import time_stream

# name -> (cache key in your_model_to_device, aeon data set, module class, training epochs, what it is)
CLASSIFIERS = {
    "basicmotions-lstm32": ("sensor", "BasicMotions", SensorLSTM, 150, "sensor LSTM 32, last step (BasicMotions)"),
    "japanesevowels-lstm48": ("onnx_lstm", "JapaneseVowels", LSTMClassifier, 40,
                              "LSTM 48 classifier, last step (JapaneseVowels; the table's ONNX case's torch model)"),
    "japanesevowels-gru64": ("kws", "JapaneseVowels", KeywordGRU, 60, "keyword-spotting GRU 64, last step "
                             "(JapaneseVowels)"),
}
STANDARDISATION = ("each channel standardised with the training set's mean / std (foreign_data.aeon_set), sequences "
                   "front-padded with zeros to the longest; the arrays written are already standardised")


def trained(name: str):
    key, dataset, cls, epochs, what = CLASSIFIERS[name]
    data = aeon_set(dataset)
    module, record = train_classifier(key, cls(), data, epochs)
    return module.eval(), record, data, what


def torch_layout(module: nn.Module) -> tuple[dict, dict[str, torch.Tensor]]:
    """(spec, tensors under fixed names) of a one-layer LSTM / GRU -> Linear classifier."""
    rnn = next(m for m in module.modules() if isinstance(m, (nn.LSTM, nn.GRU)))
    head = next(m for m in module.modules() if isinstance(m, nn.Linear))
    if rnn.num_layers != 1 or rnn.bidirectional:
        raise ValueError("the peer classifiers are one unidirectional layer; add the layers to torch_layout")
    w = {f"rnn.{n}": p.detach().contiguous() for n, p in rnn.named_parameters()}
    w |= {"head.weight": head.weight.detach().contiguous(), "head.bias": head.bias.detach().contiguous()}
    spec = {"cell": "lstm" if isinstance(rnn, nn.LSTM) else "gru", "hidden_size": rnn.hidden_size,
            "features": rnn.input_size, "classes": head.out_features, "num_layers": 1}
    return spec, w


def _latency(fn, no_latency: bool) -> dict | None:
    if no_latency:
        return None
    out = time_stream(fn, steps=50, repeats=5, warmup=5)
    return {"median_ms": out["median_ms"], "spread_ms": out["spread_ms"], "load_avg": list(os.getloadavg()),
            "how": "one whole-sequence inference at batch 1 (zero state, all steps, class logits): "
                   "time_stream median of 5 rounds x 50 after 5 warm-up, 1 thread"}


def integer_model(seq, data):
    """(fully integer copy of the captured model, its IntegerRunner), calibrated on the training set."""
    return integer_copy(seq, [b.transpose(0, 1) for b in data.x_train.split(64)])  # time-major batches


def latency_only(name: str) -> dict | None:
    module, _, data, _ = trained(name)
    _, runner = integer_model(capture(module, (data.x_train[:8],)), data)
    return _latency(lambda: runner.run_sequence(data.x_test[0]), False)


def write_reference(name: str, out: Path, no_latency: bool) -> None:
    module, record, data, what = trained(name)
    spec, w = torch_layout(module)
    spec["steps"] = int(data.x_test.shape[1])
    save_file(w, str(out / "weights.safetensors"))
    for split, x, y in (("train", data.x_train, data.y_train), ("test", data.x_test, data.y_test)):
        np.save(out / f"x_{split}.npy", x.numpy().astype(np.float32))
        np.save(out / f"y_{split}.npy", y.numpy().astype(np.int64))
    np.save(out / "ids.npy", data.y_test.numpy().astype(np.int64))
    with torch.inference_mode():
        logits = module(data.x_test)
    np.save(out / "parity_logits.npy", logits.float().numpy())
    acc = float((logits.argmax(-1) == data.y_test).float().mean())
    x0 = data.x_test[:1]
    with tempfile.TemporaryDirectory(prefix="peers_cls_") as tmp:
        seq = capture(module, (data.x_train[:8],))
        save_model(seq, Path(tmp) / "fp32")
        fp32_bytes = artifact_bytes(Path(tmp) / "fp32")
        q, runner = integer_model(seq, data)
        save_model(q, Path(tmp) / "int8")
        int8_bytes = artifact_bytes(Path(tmp) / "int8")
        facts = export_c(q, Path(tmp) / "c", name="model")
    pred = torch.stack([runner.run_sequence(s).argmax() for s in data.x_test])
    with torch.inference_mode():
        fp32_lat = _latency(lambda: module(x0), no_latency)
    rows = [{"variant": "rnnslim fp32 (torch, the user's module)", "accuracy": acc, "artifact_bytes": fp32_bytes,
             "latency": fp32_lat, "note": "bytes: the captured float model (manifest + fp32 safetensors)"},
            {"variant": "rnnslim int8 fully integer (C kernel, IntegerRunner)",
             "accuracy": float((pred == data.y_test).float().mean()), "artifact_bytes": int8_bytes,
             "c_export": {"const_bytes": facts.const_bytes, "scratch_bytes": facts.scratch_bytes,
                          "state_bytes": facts.state_bytes},
             "latency": _latency(lambda: runner.run_sequence(data.x_test[0]), no_latency),
             "predictions_changed_vs_fp32": int((pred != logits.argmax(-1)).sum()),
             "calibration": "the training set, batches of 64 sequences",
             "note": "rnnslim.capture -> quantize_int8_(INTEGER) -> IntegerRunner.run_sequence (bit-exact with the "
                     "C export); c_export.const_bytes: flash of export_c's arrays; scratch + state: its RAM"}]
    ref = {"model": name, "kind": "classifier", "what": what, "dataset": data.name, "spec": spec,
           "test_sequences": int(len(data.y_test)), "train_sequences": int(len(data.y_train)),
           "classes": data.classes, "standardisation": STANDARDISATION, "training": record,
           "torch": torch.__version__, "rows": rows}
    (out / "reference.json").write_text(json.dumps(ref, indent=1))
    for r in rows:
        ms = f"{r['latency']['median_ms']:.4f} ms" if r["latency"] else "-"
        print(f"{r['variant']:55s} accuracy {r['accuracy']:.4f}  {r['artifact_bytes']:>8,} B  {ms}", flush=True)
