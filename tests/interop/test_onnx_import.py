"""import_onnx: small torch models exported with torch.onnx.export (TorchScript exporter: fast;
the dynamo exporter's graphs import too but take seconds to make) come back as SequenceModels
whose outputs equal ONNX Runtime's; unsupported nodes are refused by op_type and name."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

onnx = pytest.importorskip("onnx", reason="onnx is an optional extra (pip install 'rnnslim[onnx]')")
pytest.importorskip("onnxruntime", reason="onnxruntime is an optional extra (pip install 'rnnslim[onnx]')")

from onnx import TensorProto, helper  # noqa: E402

from rnnslim.export.onnx import ort_session  # noqa: E402
from rnnslim.interop.assemble import relative_error  # noqa: E402
from rnnslim.interop.onnx_import import import_onnx  # noqa: E402
from rnnslim.models.sequence import InputKind, OutputActivation, Readout  # noqa: E402
from rnnslim.recurrent.gates import CellType  # noqa: E402


class WordLM(nn.Module):
    """Embedding -> 2-layer LSTM -> Linear, batch-first (the usual examples' shape)."""

    def __init__(self):
        super().__init__()
        self.emb, self.fc = nn.Embedding(13, 6), nn.Linear(5, 13)
        self.rnn = nn.LSTM(6, 5, num_layers=2, batch_first=True)

    def forward(self, x):
        y, _ = self.rnn(self.emb(x))
        return self.fc(y)


class TiedLM(WordLM):
    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(6, 6, batch_first=True)
        self.fc = nn.Linear(6, 13)
        self.fc.weight = self.emb.weight


class ExamplesLM(nn.Module):
    """The PyTorch examples word LM's shape: time-major, decoded.view(-1, ntoken), log_softmax."""

    def __init__(self):
        super().__init__()
        self.encoder, self.rnn, self.decoder = nn.Embedding(20, 8), nn.LSTM(8, 8, 2), nn.Linear(8, 20)

    def forward(self, x):
        out, _ = self.rnn(self.encoder(x))
        return torch.log_softmax(self.decoder(out).view(-1, 20), dim=1)


class GRUClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn, self.fc = nn.GRU(4, 5, batch_first=True), nn.Linear(5, 3)

    def forward(self, x):
        y, _ = self.rnn(x)
        return self.fc(y[:, -1])


class BiTagger(nn.Module):
    """Time-major bidirectional LSTM, a Linear on every step."""

    def __init__(self):
        super().__init__()
        self.rnn, self.fc = nn.LSTM(4, 5, bidirectional=True), nn.Linear(10, 3)

    def forward(self, x):
        y, _ = self.rnn(x)
        return self.fc(y)


class FinalState(nn.Module):
    """Input Linear -> 2-layer LSTM, classified from h_n[-1], then log_softmax."""

    def __init__(self):
        super().__init__()
        self.proj, self.rnn, self.fc = nn.Linear(4, 6), nn.LSTM(6, 5, num_layers=2, batch_first=True), nn.Linear(5, 3)

    def forward(self, x):
        _, (h, _) = self.rnn(self.proj(x))
        return torch.log_softmax(self.fc(h[-1]), -1)


class MeanRNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn, self.fc = nn.RNN(4, 5, nonlinearity="relu", batch_first=True), nn.Linear(5, 2)

    def forward(self, x):
        y, _ = self.rnn(x)
        return self.fc(y.mean(1))


class ReluHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn, self.fc = nn.GRU(4, 5, batch_first=True), nn.Linear(5, 2)

    def forward(self, x):
        y, _ = self.rnn(x)
        return self.fc(torch.relu(y))


def _export(module: nn.Module, x: torch.Tensor, path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (x,), str(path), dynamo=False, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "a", 1: "b"}})


def _ours(model, x: np.ndarray, batch_first: bool) -> np.ndarray:
    xt = torch.as_tensor(x)
    xt = xt.transpose(0, 1) if batch_first else xt
    with torch.no_grad():
        y, _ = model(xt)
    return (y.transpose(0, 1) if batch_first and model.spec.readout is Readout.ALL else y).numpy()


@pytest.mark.parametrize("make, x, cell, kind, readout, layers, batch_first", [
    (WordLM, torch.randint(0, 13, (2, 6)), CellType.LSTM, InputKind.EMBEDDING, Readout.ALL, [False, False], True),
    (GRUClassifier, torch.randn(2, 6, 4), CellType.GRU, InputKind.IDENTITY, Readout.LAST, [False], True),
    (BiTagger, torch.randn(6, 2, 4), CellType.LSTM, InputKind.IDENTITY, Readout.ALL, [True], False),
    (MeanRNN, torch.randn(2, 6, 4), CellType.RNN_RELU, InputKind.IDENTITY, Readout.MEAN, [False], True),
])
def test_imported_model_computes_what_onnxruntime_computes(tmp_path, make, x, cell, kind, readout, layers, batch_first):
    path = tmp_path / "m.onnx"
    _export(make(), x, path)
    model = import_onnx(path)
    assert (model.spec.cell, model.spec.input_kind, model.spec.readout) == (cell, kind, readout)
    assert [layer.bidirectional for layer in model.spec.layers] == layers
    x2 = (torch.randint(0, 13, (3, 9)) if kind is InputKind.EMBEDDING else torch.randn(3, 9, 4)).numpy()
    theirs = ort_session(path).run(None, {"x": x2})[0]  # other sizes than the export's: the axes are dynamic
    assert relative_error(_ours(model, x2, batch_first), theirs) <= 1e-5


def test_tied_embedding_and_decoder_stay_tied(tmp_path):
    path = tmp_path / "m.onnx"
    _export(TiedLM(), torch.randint(0, 13, (2, 6)), path)  # the file holds the matrix twice (W and W^T)
    model = import_onnx(path)
    assert model.spec.tie_weights and model.decoder.weight is model.embedding.weight
    x = torch.randint(0, 13, (3, 5)).numpy()
    assert relative_error(_ours(model, x, batch_first=True), ort_session(path).run(None, {"x": x})[0]) <= 1e-5


def test_time_and_batch_flattened_into_rows(tmp_path):
    path = tmp_path / "m.onnx"
    _export(ExamplesLM(), torch.randint(0, 20, (6, 2)), path)
    model = import_onnx(path)
    assert model.spec.readout is Readout.ALL and model.spec.output_activation is OutputActivation.LOG_SOFTMAX
    x = torch.randint(0, 20, (7, 3))
    with torch.no_grad():
        ours = torch.log_softmax(model(x)[0], -1).reshape(-1, 20).numpy()  # (T * B, V), time-major rows
    assert relative_error(ours, ort_session(path).run(None, {"x": x.numpy()})[0]) <= 1e-5


def test_final_state_readout_input_linear_and_log_softmax(tmp_path):
    path = tmp_path / "m.onnx"
    _export(FinalState(), torch.randn(2, 6, 4), path)
    model = import_onnx(path)
    assert (model.spec.input_kind, model.spec.readout, len(model.spec.layers)) == (InputKind.LINEAR, Readout.LAST, 2)
    assert model.spec.output_activation is OutputActivation.LOG_SOFTMAX
    assert import_onnx(path, drop_softmax=True).spec.output_activation is OutputActivation.NONE
    x = torch.randn(3, 5, 4).numpy()
    ours = torch.log_softmax(torch.as_tensor(_ours(model, x, batch_first=True)), -1).numpy()
    assert relative_error(ours, ort_session(path).run(None, {"x": x})[0]) <= 1e-5


def test_unknown_node_is_named(tmp_path):
    path = tmp_path / "m.onnx"
    _export(ReluHead(), torch.randn(2, 6, 4), path)
    with pytest.raises(ValueError, match=r"node Relu '[^']*' is not supported"):
        import_onnx(path)


def _recurrent_graph(path, op: str = "GRU", layout: int = 0, **attrs) -> None:
    """A hand-made one-node graph: x (T, B, 4) (layout 1: (B, T, 4)) -> op with 3 units -> y."""
    rng = np.random.default_rng(0)
    g = {"GRU": 3, "LSTM": 4, "RNN": 1}[op]
    w = helper.make_tensor("W", TensorProto.FLOAT, [1, 3 * g, 4], rng.standard_normal(12 * g).tolist())
    r = helper.make_tensor("R", TensorProto.FLOAT, [1, 3 * g, 3], rng.standard_normal(9 * g).tolist())
    b = helper.make_tensor("B", TensorProto.FLOAT, [1, 6 * g], rng.standard_normal(6 * g).tolist())
    node = helper.make_node(op, ["x", "W", "R", "B"], ["Y"], name=f"the_{op.lower()}", hidden_size=3, layout=layout,
                            **attrs)
    squeeze = helper.make_node("Squeeze", ["Y", "axis"], ["y"], name="sq")
    axis = helper.make_tensor("axis", TensorProto.INT64, [1], [2 if layout else 1])
    dims = ["B", "T"] if layout else ["T", "B"]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [*dims, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [*dims, 3])
    graph = helper.make_graph([node, squeeze], "g", [x], [y], [w, r, b, axis])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def test_gru_linear_before_reset(tmp_path):
    _recurrent_graph(tmp_path / "old.onnx", "GRU", linear_before_reset=0)
    with pytest.raises(ValueError, match="GRU 'the_gru' has linear_before_reset=0"):
        import_onnx(tmp_path / "old.onnx")
    _recurrent_graph(tmp_path / "new.onnx", "GRU", linear_before_reset=1)  # torch's convention: imports, no decoder
    model = import_onnx(tmp_path / "new.onnx")
    assert model.spec.output_size == 3 and torch.equal(model.decoder.weight, torch.eye(3))


def test_not_an_onnx_file(tmp_path):
    bad = tmp_path / "m.onnx"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match="not a valid ONNX model"):
        import_onnx(bad)


@pytest.mark.slow
def test_dynamo_export_imports(tmp_path):
    """torch.onnx.export's default (dynamo) exporter: static shapes, weights in a .data file
    beside the graph, Reshape targets as constants."""
    path = tmp_path / "lm.onnx"
    x = torch.randint(0, 13, (2, 6))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(WordLM().eval(), (x,), str(path), dynamo=True, input_names=["x"], output_names=["y"],
                          verbose=False)
    model = import_onnx(path)
    assert len(model.spec.layers) == 2 and model.spec.input_kind is InputKind.EMBEDDING
    theirs = ort_session(path).run(None, {"x": x.numpy()})[0]
    assert relative_error(_ours(model, x.numpy(), batch_first=True), theirs) <= 1e-5


def test_graph_without_recurrent_node_says_so(tmp_path):
    w = helper.make_tensor("W", TensorProto.FLOAT, [4, 3], [0.5] * 12)
    node = helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["T", "B", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["T", "B", 3])
    onnx.save(helper.make_model(helper.make_graph([node], "g", [x], [y], [w]),
                                opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "m.onnx"))
    with pytest.raises(ValueError, match="no LSTM, GRU or RNN node.*dynamo=False"):
        import_onnx(tmp_path / "m.onnx")


def test_batch_major_layout_is_checked_with_the_reference_evaluator(tmp_path):
    """layout=1 (batch first inside the node): ORT's CPU kernels refuse it, onnx's reference
    evaluator runs it, and the import reads batch and time from the node."""
    from onnx.reference import ReferenceEvaluator

    _recurrent_graph(tmp_path / "m.onnx", "LSTM", layout=1)
    model = import_onnx(tmp_path / "m.onnx")
    x = np.random.default_rng(1).standard_normal((2, 5, 4)).astype(np.float32)  # (B, T, F)
    theirs = ReferenceEvaluator(onnx.load(str(tmp_path / "m.onnx"))).run(None, {"x": x})[0]
    assert relative_error(_ours(model, x, batch_first=True), theirs) <= 1e-5
