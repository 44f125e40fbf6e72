"""int8 ONNX step graphs with unfused recurrent matmuls (rnnslim.export.onnx_int8).

Tolerances (int8 is lossy, so the bounds are on the quantization error, chosen to catch bugs):
- the fp32 unfused graph before quantization equals the model: max |ORT - torch| <= 1e-5
- int8 logits over 100 random streaming steps (random tokens/features, state carried from a
  random state): max |ORT int8 - torch| <= INT8_REL * max |logits| (measured: 0.005-0.008 on the
  small trained models here); a plausible bug (r and z gate rows swapped) exceeds the bound
- loss of a small trained char model on 2000 characters: int8 <= fp32 * (1 + LOSS_REL)
  (measured: within +-0.03%)
"""

import copy
import random

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime", reason="onnxruntime is an optional extra (pip install 'rnnslim[onnx]')")

from rnnslim.export import onnx_int8  # noqa: E402
from rnnslim.export.onnx import OnnxParityError, OrtStepRunner, example_inputs, read_layout  # noqa: E402
from rnnslim.export.onnx_int8 import export_int8_onnx, int8_max_abs_diff  # noqa: E402
from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, SequenceModel  # noqa: E402
from rnnslim.quantize.api import WeightOnly, quantize_  # noqa: E402
from rnnslim.tasks.charlm import CharLMTask, stream_nll  # noqa: E402
from rnnslim.utils.threads import torch_threads  # noqa: E402

INT8_REL = 0.02
LOSS_REL = 0.005
STEPS = 100


@pytest.fixture(autouse=True)
def _one_thread():
    """Batch-1 torch steps on two shared cores: one thread (two are ~10x slower under load)."""
    with torch_threads(1):
        yield


def _text() -> str:
    rng = random.Random(0)
    words = "the a cat dog sat ran on under mat log big small red".split()
    return "".join(" ".join(rng.choice(words) for _ in range(rng.randint(3, 8))) + ". " for _ in range(1500))


@pytest.fixture(scope="module")
def task():
    return CharLMTask(text=_text())


def _train(task, cell, steps=120) -> SequenceModel:
    torch.manual_seed(0)
    m = SequenceModel(task.model_spec(cell=cell, hidden_size=32, num_layers=2, embed_size=16))
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    done = 0
    while done < steps:
        for b in task.batches("train", 16, 32, shuffle=True, generator=g):
            loss = task.loss(m(b.inputs)[0], b)
            opt.zero_grad()
            loss.backward()
            opt.step()
            done += 1
            if done >= steps:
                break
    return m.eval()


@pytest.fixture(scope="module")
def trained(task):
    with torch_threads(1):  # two shared cores: one thread trains these tiny models fastest
        return {cell: _train(task, cell) for cell in ("gru", "lstm")}


def _logit_scale(model, layout, steps=STEPS) -> float:
    """max |logits| of the model over the same random stream int8_max_abs_diff uses."""
    g = np.random.default_rng(1)
    state = example_inputs(layout, seed=0)[1:]
    from rnnslim.export.onnx import _run_torch

    worst = 0.0
    for _ in range(steps):
        x = example_inputs(layout, seed=int(g.integers(1 << 30)))[0]
        out = _run_torch(model, layout, [x, *state])
        worst = max(worst, float(np.abs(out[0]).max()))
        state = out[1:]
    return worst


def _weights_are_int8(path) -> None:
    """Every matrix initializer is int8; float initializers are vectors (biases, scales)."""
    import onnx

    proto = onnx.load(str(path))
    mats = [(t.name, t.data_type) for t in proto.graph.initializer if len(t.dims) >= 2]
    assert mats and all(dt == onnx.TensorProto.INT8 for _, dt in mats), mats


def _no_float_recurrence(ops: dict) -> None:
    assert not {"LSTM", "GRU", "RNN", "Gemm"} & set(ops), ops
    assert "MatMul" not in ops, f"a float MatMul was left: {ops}"
    assert ops.get("MatMulInteger", 0) > 0 and ops.get("DynamicQuantizeLinear", 0) > 0


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("fold", [True, False])
def test_trained_parity_loss_and_graph(tmp_path, task, trained, cell, fold):
    m = trained[cell]
    facts = export_int8_onnx(m, tmp_path / "m.onnx", fold_embedding=fold, check_steps=STEPS)
    assert facts["parity_fp32_max_abs_diff"] <= 1e-5
    assert facts["fold_embedding"] is fold
    ops = facts["op_types"]
    _no_float_recurrence(ops)
    # 2 layers x (input + recurrent) + decoder; the folded layer-0 input product is a Gather instead
    assert ops["MatMulInteger"] == 2 * 2 + 1 - (1 if fold else 0)
    assert ops.get("DequantizeLinear") == 1  # the int8 gathered table
    assert facts["bytes"] < 0.6 * facts["fp32_unfused_bytes"]  # tiny model: names and scales weigh in
    _weights_are_int8(facts["path"])
    layout = read_layout(facts["path"])
    assert layout.static_time and layout.cell == cell
    bound = INT8_REL * _logit_scale(m, layout)
    assert facts["int8_parity"]["steps"] == STEPS
    assert facts["parity_max_abs_diff"] <= bound, (facts["int8_parity"], bound)
    # the loss of the trained model on 2000 characters, streamed through ORT one step at a time
    d = task.split("test")[:2001]
    ref = stream_nll(m, d)["loss_nats"]
    y = OrtStepRunner(facts["path"]).sequence(d[:-1].numpy().reshape(-1, 1))
    loss = torch.nn.functional.cross_entropy(torch.from_numpy(y[:, 0]), d[1:]).item()
    assert loss <= ref * (1 + LOSS_REL), (loss, ref)
    assert abs(loss - ref) < 0.05


def test_bound_catches_a_gate_order_bug(tmp_path, trained):
    """The int8 bound fails for a graph computing a model with the r and z gate rows swapped."""
    m = trained["gru"]
    facts = export_int8_onnx(m, tmp_path / "m.onnx")
    wrong = copy.deepcopy(m)
    H = 32
    with torch.no_grad():
        for layer in wrong.rnn.layers:
            for name in ("weight_hh_l0", "bias_hh_l0"):
                p = getattr(layer, name)
                p.copy_(torch.cat([p[H : 2 * H], p[:H], p[2 * H :]]))
    bound = INT8_REL * _logit_scale(m, read_layout(facts["path"]))
    assert int8_max_abs_diff(wrong, facts["path"], steps=STEPS)["logits_max_abs_diff"] > bound


def _model(cell, layers, kind, readout) -> SequenceModel:
    torch.manual_seed(1)
    spec = ModelSpec(cell=cell, input_kind=kind, input_size=12, embed_size=12 if kind is InputKind.IDENTITY else 16,
                     layers=layers, output_size=11, readout=readout)
    return SequenceModel(spec).eval()  # default init: contracting dynamics (larger random weights are chaotic)


@pytest.mark.parametrize("cell,layers,kind,readout", [
    ("gru", [LayerShape(hidden_size=24, bidirectional=True), LayerShape(hidden_size=16)], InputKind.LINEAR, "last"),
    ("lstm", [LayerShape(hidden_size=24, proj_size=8), LayerShape(hidden_size=16)], InputKind.IDENTITY, "mean"),
    ("rnn_tanh", [LayerShape(hidden_size=24)] * 2, InputKind.EMBEDDING, "all"),
    ("rnn_relu", [LayerShape(hidden_size=24, bidirectional=True)], InputKind.EMBEDDING, "all"),
])
def test_cells_inputs_readouts(tmp_path, cell, layers, kind, readout):
    m = _model(cell, layers, kind, readout)
    facts = export_int8_onnx(m, tmp_path / "m.onnx", check_steps=STEPS)
    assert facts["parity_fp32_max_abs_diff"] <= 1e-5
    _no_float_recurrence(facts["op_types"])
    runner = OrtStepRunner(facts["path"])
    assert facts["parity_max_abs_diff"] <= INT8_REL * _logit_scale(m, runner.layout)
    # a sequence at batch 3 through the runner's time loop (T is fixed to 1 in the graph), against the
    # model streamed one step at a time (equal to the whole-sequence call except for bidirectional layers)
    x = example_inputs(runner.layout, T=7, B=3, seed=5)[0]
    state, ys = None, []
    with torch.no_grad():
        for t in range(7):
            y, state = m(torch.from_numpy(x[t : t + 1]), state)
            ys.append(y.numpy())
    ref = np.concatenate(ys) if readout == "all" else ys[-1] if readout == "last" else np.mean(ys, axis=0)
    out = runner.sequence(x)
    assert out.shape == ref.shape
    assert np.abs(out - ref).max() <= INT8_REL * np.abs(ref).max() * 2


def test_weight_only_model_is_dequantized_first(tmp_path):
    m = _model("gru", [LayerShape(hidden_size=32)], InputKind.EMBEDDING, "all")
    quantize_(m, WeightOnly(bits=4, group_size=16))
    facts = export_int8_onnx(m, tmp_path / "q.onnx")
    assert "rnn.layers.0" in facts["dequantized_layers"] and "decoder" in facts["dequantized_layers"]
    assert facts["parity_fp32_max_abs_diff"] <= 1e-5  # the float graph equals the quantized model
    assert facts["parity_max_abs_diff"] <= INT8_REL * _logit_scale(m, read_layout(facts["path"]))


def test_failed_fp32_parity_leaves_no_file(tmp_path, monkeypatch):
    m = _model("gru", [LayerShape(hidden_size=16)], InputKind.EMBEDDING, "all")
    monkeypatch.setattr(onnx_int8, "parity_max_abs_diff", lambda model, path: 1.0)
    with pytest.raises(OnnxParityError):
        export_int8_onnx(m, tmp_path / "bad.onnx")
    assert list(tmp_path.iterdir()) == []
