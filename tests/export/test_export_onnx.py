"""ONNX export of one streaming step: parity with PyTorch, graph contents, ORT runner."""

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")

from rnnslim.export.onnx import (  # noqa: E402
    OnnxParityError,
    OrtStepRunner,
    export_step_onnx,
    quantize_dynamic_int8,
    read_layout,
)
from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, SequenceModel  # noqa: E402


def model(cell, layers, kind=InputKind.EMBEDDING, readout="all") -> SequenceModel:
    spec = ModelSpec(cell=cell, input_kind=kind, input_size=13, embed_size=13 if kind is InputKind.IDENTITY else 10,
                     layers=layers, output_size=13, readout=readout)
    return SequenceModel(spec).eval()


def torch_stream(m, xs):
    state, outs = None, []
    with torch.no_grad():
        for x in xs:
            y, state = m(torch.from_numpy(x), state)
            outs.append(y.numpy())
    return outs


def ort_stream(runner, xs):
    state, outs = runner.init_state(1), []
    for x in xs:
        y, state = runner.step(x, state)
        outs.append(y)
    return outs


@pytest.mark.parametrize("cell,layers,fused_op", [
    ("lstm", [LayerShape(hidden_size=16)] * 2, "LSTM"),
    ("gru", [LayerShape(hidden_size=16)] * 2, "GRU"),
    ("gru", [LayerShape(hidden_size=16, bidirectional=True), LayerShape(hidden_size=8)], "GRU"),
])
def test_parity_and_fused_recurrent_nodes(tmp_path, cell, layers, fused_op):
    m = model(cell, layers)
    exp = export_step_onnx(m, tmp_path / "s.onnx")
    assert exp.exporter == "torchscript" and exp.parity_max_abs_diff < 1e-5
    assert exp.op_types[fused_op] == len(layers)  # one ONNX LSTM/GRU node per layer: ORT can quantize them
    runner = OrtStepRunner(exp.path)
    xs = [np.array([[i % 13]], dtype=np.int64) for i in range(20)]  # streaming from a zero state
    worst = max(np.abs(a - b).max() for a, b in zip(torch_stream(m, xs), ort_stream(runner, xs)))
    assert worst < 1e-5
    x = np.random.default_rng(0).integers(0, 13, size=(7, 3))  # dynamic T and B
    with torch.no_grad():
        ref = m(torch.from_numpy(x))[0].numpy()
    assert np.abs(runner.sequence(x) - ref).max() < 1e-5


def test_lstm_projection_is_exported_unfused_with_static_time(tmp_path):
    m = model("lstm", [LayerShape(hidden_size=16, proj_size=6), LayerShape(hidden_size=12)])
    exp = export_step_onnx(m, tmp_path / "p.onnx")
    assert exp.layout.static_time and exp.parity_max_abs_diff < 1e-5
    assert exp.op_types.get("LSTM") == 1  # the layer without projection stays fused
    x = np.random.default_rng(1).integers(0, 13, size=(5, 2))
    with torch.no_grad():
        ref = m(torch.from_numpy(x))[0].numpy()
    assert np.abs(OrtStepRunner(exp.path).sequence(x) - ref).max() < 1e-5


@pytest.mark.parametrize("kind,readout", [(InputKind.LINEAR, "last"), (InputKind.IDENTITY, "mean")])
def test_feature_inputs_and_readouts(tmp_path, kind, readout):
    m = model("lstm", [LayerShape(hidden_size=8)], kind, readout)
    exp = export_step_onnx(m, tmp_path / "f.onnx")
    assert read_layout(exp.path).input_kind == "features"
    x = np.random.default_rng(2).standard_normal((6, 4, 13)).astype(np.float32)
    with torch.no_grad():
        ref = m(torch.from_numpy(x))[0].numpy()
    assert ref.shape == (4, 13)
    assert np.abs(OrtStepRunner(exp.path).sequence(x) - ref).max() < 1e-5


def sqnr_db(ref: np.ndarray, approx: np.ndarray) -> float:
    """Signal-to-quantization-noise ratio of approx against ref, in dB."""
    noise = float(((approx - ref) ** 2).mean())
    return float("inf") if noise == 0 else 10 * np.log10(float((ref**2).mean()) / noise)


def test_int8_lstm_is_quantized_and_gru_is_not(tmp_path):
    """ORT's dynamic int8 swaps the LSTM for DynamicQuantizeLSTM and keeps the float GRU; both
    graphs still compute the model (within int8 noise, SQNR > 25 dB; typically ~45 dB), and
    the LSTM graph really is quantized (its outputs differ from the float graph's)."""
    x = np.random.default_rng(0).integers(0, 13, size=(30, 2)).astype(np.int64)  # (T, B) token ids
    torch.manual_seed(0)
    m_lstm, m_gru = model("lstm", [LayerShape(hidden_size=16)]), model("gru", [LayerShape(hidden_size=16)])
    lstm = export_step_onnx(m_lstm, tmp_path / "l.onnx")
    ops = quantize_dynamic_int8(lstm.path, tmp_path / "lq.onnx")
    assert ops.get("DynamicQuantizeLSTM") == 1 and "LSTM" not in ops
    assert read_layout(tmp_path / "lq.onnx") == lstm.layout  # the runner can still drive it
    gru = export_step_onnx(m_gru, tmp_path / "g.onnx")
    assert quantize_dynamic_int8(gru.path, tmp_path / "gq.onnx").get("GRU") == 1  # ORT has no int8 GRU
    for m, float_path, int8_path in ((m_lstm, lstm.path, tmp_path / "lq.onnx"), (m_gru, gru.path, tmp_path / "gq.onnx")):
        with torch.no_grad():
            ref = m(torch.from_numpy(x))[0].numpy()  # (T, B, V)
        fp32, int8 = OrtStepRunner(float_path).sequence(x), OrtStepRunner(int8_path).sequence(x)
        assert int8.shape == ref.shape == (30, 2, 13)
        assert np.abs(fp32 - ref).max() < 1e-5
        assert sqnr_db(ref, int8) > 25, sqnr_db(ref, int8)
        assert np.abs(int8 - fp32).max() > 1e-6  # quantized weights, not the float graph under another name
    runner = OrtStepRunner(tmp_path / "lq.onnx")
    y, state = runner.step(np.zeros((1, 1), dtype=np.int64), runner.init_state(1))
    assert y.shape == (1, 1, 13) and len(state) == 2


def test_parity_failure_raises_and_leaves_no_file(tmp_path):
    m = model("gru", [LayerShape(hidden_size=8)])
    with pytest.raises(OnnxParityError, match="max"):
        export_step_onnx(m, tmp_path / "x.onnx", exporter="torchscript", tol=-1.0)
    assert not (tmp_path / "x.onnx").exists()


def test_rejects_non_float32_and_foreign_modules(tmp_path):
    with pytest.raises(TypeError, match="float32"):
        export_step_onnx(model("gru", [LayerShape(hidden_size=8)]).half(), tmp_path / "h.onnx")
    with pytest.raises(TypeError, match="SequenceModel"):
        export_step_onnx(torch.nn.LSTM(2, 3), tmp_path / "n.onnx")


def test_dynamo_exporter_fallback_path(tmp_path):
    m = model("gru", [LayerShape(hidden_size=8)])
    exp = export_step_onnx(m, tmp_path / "d.onnx", exporter="dynamo")
    assert exp.exporter == "dynamo" and exp.opset >= 18
    assert exp.layout.static_time  # torch.export specialises time for the recurrent op
    x = np.random.default_rng(3).integers(0, 13, size=(4, 3))
    with torch.no_grad():
        ref = m(torch.from_numpy(x))[0].numpy()
    assert np.abs(OrtStepRunner(exp.path).sequence(x) - ref).max() < 1e-5
