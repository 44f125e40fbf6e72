"""measure(): the report's structure, baselines in the same run, JSON round trip, table."""

import json
import sys

import pytest
import torch
from torch import nn

from rnnslim.measure import MeasureReport, VariantKind, measure
from rnnslim.measure.variants import BASELINE_KINDS
from rnnslim.models.sequence import SequenceModel
from rnnslim.tasks.charlm import CharLMTask

HAS_ORT = True
try:
    import onnxruntime  # noqa: F401
except ImportError:
    HAS_ORT = False


@pytest.fixture(scope="module")
def task():
    return CharLMTask(text="to be or not to be, that is the question. " * 60)


@pytest.fixture(scope="module")
def report(task):
    torch.manual_seed(0)
    m = SequenceModel(task.model_spec("lstm", 16, 2))
    return measure(m, task=task, threads=(1, 2), quick=True)


def test_rows_for_every_variant_and_thread_count(report):
    kinds = [(v.kind, v.threads) for v in report.variants]
    assert kinds == [(k, t) for t in (1, 2) for k in (VariantKind.MODEL, *BASELINE_KINDS)]  # CPU: no graph rows
    for v in report.variants:
        if v.kind in (VariantKind.ORT_FP32, VariantKind.ORT_INT8) and not HAS_ORT:
            assert "not installed" in v.status
            continue
        assert v.status == "ok", v.status
        assert v.latency.median_ms > 0 and v.throughput.steps_per_s > 0
        assert v.floor_ms > 0 and v.x_floor == pytest.approx(v.latency.median_ms / v.floor_ms)
    default = report.variant("torch_default", 1)
    assert default.ratio_vs_torch_default == 1.0
    assert report.variant("model", 1).ratio_vs_torch_default == pytest.approx(
        report.variant("model", 1).latency.median_ms / default.latency.median_ms)


def test_model_summary(report):
    assert report.baseline_is_model and report.baseline is None
    assert report.model.size.parameters == report.model.size.nonzero_parameters > 0
    V = report.model.macs.parts[-1].dense // 16  # head: V x 16
    assert report.model.macs.dense == 4 * 16 * (16 + 16) * 2 + V * 16
    assert report.model.quality.max_steps == report.settings.eval_max_steps
    assert report.settings.quick and len(report.bandwidth) == 2


@pytest.mark.skipif(not HAS_ORT, reason="onnxruntime not installed")
def test_ort_rows_and_export_record(report):
    int8 = report.variant("ort_int8", 1)
    fp32 = report.variant("ort_fp32", 1)
    assert "DynamicQuantizeLSTM x2" in int8.note
    assert int8.artifact_bytes < fp32.artifact_bytes and int8.bytes_per_step < fp32.bytes_per_step
    assert report.onnx_export["parity_max_abs_diff"] < 1e-4


def test_json_round_trip(report):
    data = json.loads(json.dumps(report.to_dict()))
    again = MeasureReport.from_dict(data)
    assert again == report
    assert data["machine"]["cpu_model"] and data["machine"]["torch_version"] == torch.__version__


def test_table_has_one_row_per_variant(report):
    text = report.table()
    for label in ("model", "torch nn (default)", "torch nn (oneDNN off)", "ONNX Runtime fp32", "ONNX Runtime int8 dynamic"):
        assert sum(line.split("  ")[0] == label for line in text.splitlines()) == 2
    assert "QUICK" in text


def test_missing_onnxruntime_says_not_installed(task, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import raises ImportError
    m = SequenceModel(task.model_spec("gru", 8, 1))
    r = measure(m, task=None, threads=(1,), quick=True)
    assert "not installed" in r.variant("ort_fp32", 1).status
    assert r.variant("torch_default", 1).status == "ok"
    assert "not installed" in r.table()


class HalfLayers(nn.Module):
    """A swapped-in layer with the nn.GRU contract that to_torch() cannot convert."""

    def __init__(self, gru: nn.GRU) -> None:
        super().__init__()
        self.gru = gru

    def forward(self, x, h=None):
        return self.gru(x, h)


def test_compressed_model_uses_the_given_baseline(task):
    base = SequenceModel(task.model_spec("gru", 8, 1)).eval()
    small = SequenceModel(task.model_spec("gru", 8, 1)).eval()
    small.load_state_dict(base.state_dict())
    small.rnn.layers[0] = HalfLayers(small.rnn.layers[0])
    alone = measure(small, threads=(1,), quick=True)
    assert not alone.baseline_is_model
    assert "--baseline PATH" in alone.variant("torch_default", 1).status
    paired = measure(small, task=task, baseline=base, threads=(1,), quick=True, include_baselines=True)
    assert paired.variant("torch_default", 1).status == "ok"
    assert paired.baseline is not None and paired.quality_change.absolute == pytest.approx(0.0, abs=1e-6)


def test_user_module_with_callables():
    lstm = nn.LSTM(3, 4).eval()
    x_t = torch.randn(1, 1, 3)
    r = measure(lstm, threads=(1,), quick=True, step_fn=lambda s: lstm(x_t, s)[1],
                batch_fn=lambda: lstm(torch.randn(16, 64, 3)), eval_fn=lambda m: {"loss": 1.0})
    own = r.variant("model", 1)
    assert own.latency.median_ms > 0 and own.throughput.steps_per_s > 0
    assert r.model.quality.metrics == {"loss": 1.0}
    assert all("baseline" in v.status for v in r.variants if v.kind is not VariantKind.MODEL)
    with pytest.raises(TypeError, match="step_fn"):
        measure(lstm, quick=True)


def test_pruned_model_is_not_its_own_baseline(task):
    from rnnslim.measure import is_uncompressed

    m = SequenceModel(task.model_spec("lstm", 8, 1))
    assert is_uncompressed(m)
    with torch.no_grad():
        m.rnn.layers[0].weight_hh_l0[::2] = 0
    assert not is_uncompressed(m)


def test_own_step_fn_replaces_the_default_step_of_a_sequence_model(task):
    m = SequenceModel(task.model_spec("gru", 8, 1))
    calls = []
    r = measure(m, threads=(1,), quick=True, include_baselines=False, step_fn=lambda s: calls.append(s) or 0)
    s = r.settings
    assert len(calls) == s.warmup + s.steps * s.repeats
    assert [v.kind for v in r.variants] == [VariantKind.MODEL]
    assert r.variant("model", 1).throughput.batch == s.batch  # the default batch pass still runs
