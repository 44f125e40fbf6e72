"""Per-row measurements: parameter counts, latency hook-up."""

from __future__ import annotations

import sys
import types

import torch

from rnnslim.io.format import artifact_bytes, save_model
from rnnslim.models.sequence import SequenceModel
from rnnslim.pipeline.measurements import count_parameters, latency_ms, measure_model
from rnnslim.pipeline.recipe import MeasureSection
from rnnslim.tasks.charlm import CharLMTask

TASK = CharLMTask(text="the quick brown fox jumps over the lazy dog\n" * 40)


def _model(tie=False):
    return SequenceModel(TASK.model_spec(hidden_size=8, num_layers=1, embed_size=8, tie_weights=tie))


def test_count_parameters_counts_zeros_and_tied_weights_once():
    m = _model()
    total = sum(p.numel() for p in m.parameters())
    with torch.no_grad():
        m.decoder.weight[:, :4] = 0
    assert count_parameters(m) == (total, total - 4 * m.decoder.weight.shape[0])
    tied = _model(tie=True)
    assert count_parameters(tied)[0] == total - tied.decoder.weight.numel()


def test_count_parameters_without_rnnslim_measure(monkeypatch):
    m = _model()
    want = count_parameters(m)
    monkeypatch.setitem(sys.modules, "rnnslim.measure.size", None)  # as if not installed
    assert count_parameters(m) == want


def test_measure_model_row(tmp_path):
    m = _model()
    save_model(m, tmp_path / "m")
    row = measure_model(m, TASK, tmp_path / "m", MeasureSection(eval_max_steps=50))
    assert row["artifact_bytes"] == artifact_bytes(tmp_path / "m")
    assert row["metrics"]["valid"]["tokens"] == 50 and "loss_nats" in row["metrics"]["test"]
    assert row["latency"] is None and row["latency_ms"] is None


def test_latency_uses_rnnslim_measure_when_present(tmp_path, monkeypatch):
    calls = []

    def streaming_latency(model, threads, steps, repeats):
        calls.append((threads, steps, repeats))
        return {"median_ms": 0.25, "spread_ms": 0.01}

    fake = types.ModuleType("rnnslim.measure")
    fake.streaming_latency = streaming_latency
    monkeypatch.setitem(sys.modules, "rnnslim.measure", fake)
    m = _model()
    save_model(m, tmp_path / "m")
    row = measure_model(m, TASK, tmp_path / "m", MeasureSection(latency=True, threads=2, steps=10, repeats=3,
                                                                 eval_max_steps=20))
    assert calls == [(2, 10, 3)] and row["latency"]["median_ms"] == 0.25 and row["latency_ms"] == 0.25


def test_latency_ms_units():
    assert latency_ms({"median_us": 250.0}) == 0.25 and latency_ms({"median_s": 0.001}) == 1.0
    assert latency_ms(None) is None and latency_ms({"other": 1}) is None
