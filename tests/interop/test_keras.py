"""import_keras: small Keras models saved as .keras and .h5 come back as SequenceModels whose
outputs equal Keras' (checked here again, independently of the importer's own check), and
unsupported layers are refused by name."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras", reason="keras is an optional extra (pip install 'rnnslim[keras]')")
pytest.importorskip("h5py", reason="h5py is needed for .h5 files (pip install 'rnnslim[keras]')")

from rnnslim.interop.assemble import relative_error  # noqa: E402
from rnnslim.interop.keras import import_keras, random_inputs  # noqa: E402
from rnnslim.models.sequence import InputKind, OutputActivation, Readout  # noqa: E402
from rnnslim.recurrent.gates import CellType  # noqa: E402

L = keras.layers
# keras 3.15 on numpy 2 warns about __array__(copy=...) on every weight read; not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _randomize(model, scale: float = 0.5) -> None:
    """Non-zero biases everywhere, so a bias put in the wrong place shows."""
    rng = np.random.default_rng(1)
    for w in model.weights:
        w.assign((rng.standard_normal(w.shape) * scale).astype("float32"))


def _lm():
    return keras.Sequential([keras.Input((None,), dtype="int32"), L.Embedding(13, 6),
                             L.LSTM(5, return_sequences=True), L.Dense(13)])


def _gru_classifier():
    return keras.Sequential([keras.Input((9, 4)), L.GRU(5), L.Dense(3)])


def _bidirectional_tagger():
    return keras.Sequential([keras.Input((None, 4)), L.Bidirectional(L.LSTM(5, return_sequences=True)),
                             L.TimeDistributed(L.Dense(3))])


def _stacked():
    return keras.Sequential([keras.Input((None, 4)), L.LSTM(6, return_sequences=True), L.Dropout(0.3), L.LSTM(5),
                             L.Dense(2)])


def _ours(model, x: np.ndarray) -> np.ndarray:
    """rnnslim's outputs for batch-first x, batch-first like Keras'."""
    xt = torch.as_tensor(x).long() if model.spec.input_kind is InputKind.EMBEDDING else torch.as_tensor(x)
    with torch.no_grad():
        y, _ = model(xt.transpose(0, 1))
    return (y.transpose(0, 1) if model.spec.readout is Readout.ALL else y).numpy()


@pytest.mark.parametrize("make, suffix, cell, kind, readout, bidirectional", [
    (_lm, ".keras", CellType.LSTM, InputKind.EMBEDDING, Readout.ALL, [False]),
    (_lm, ".h5", CellType.LSTM, InputKind.EMBEDDING, Readout.ALL, [False]),
    (_gru_classifier, ".keras", CellType.GRU, InputKind.IDENTITY, Readout.LAST, [False]),
    (_gru_classifier, ".h5", CellType.GRU, InputKind.IDENTITY, Readout.LAST, [False]),
    (_bidirectional_tagger, ".keras", CellType.LSTM, InputKind.IDENTITY, Readout.ALL, [True]),
    (_stacked, ".h5", CellType.LSTM, InputKind.IDENTITY, Readout.LAST, [False, False]),
])
def test_imported_model_computes_what_keras_computes(tmp_path, make, suffix, cell, kind, readout, bidirectional):
    kmodel = make()
    _randomize(kmodel)
    path = tmp_path / f"m{suffix}"
    kmodel.save(path)
    model = import_keras(path)
    assert model.spec.cell is cell and model.spec.input_kind is kind and model.spec.readout is readout
    assert [layer.bidirectional for layer in model.spec.layers] == bidirectional
    x = random_inputs(model, batch=2, steps=9, seed=5)
    theirs = keras.ops.convert_to_numpy(kmodel(x, training=False))
    assert relative_error(_ours(model, x), theirs) <= 1e-5


def test_normalization_becomes_the_input_linear(tmp_path):
    rng = np.random.default_rng(2)
    norm = L.Normalization()
    norm.adapt((rng.standard_normal((20, 8, 3)) * [1.0, 10.0, 0.1] + [5.0, -3.0, 0.0]).astype("float32"))
    kmodel = keras.Sequential([keras.Input((None, 3)), norm, L.LSTM(4), L.Dense(2)])
    kmodel.save(tmp_path / "m.keras")
    model = import_keras(tmp_path / "m.keras")
    assert model.spec.input_kind is InputKind.LINEAR and model.spec.embed_size == 3
    x = (random_inputs(model, seed=6) * 10).astype("float32")  # raw features, as the Keras model reads them
    assert relative_error(_ours(model, x), keras.ops.convert_to_numpy(kmodel(x))) <= 1e-5


def test_dense_input_projection_pooling_and_simple_rnn(tmp_path):
    kmodel = keras.Sequential([keras.Input((None, 4)), L.Dense(6), L.SimpleRNN(5, activation="relu",
                               return_sequences=True), L.GlobalAveragePooling1D(), L.Dense(2)])
    _randomize(kmodel)
    kmodel.save(tmp_path / "m.keras")
    model = import_keras(tmp_path / "m.keras")
    assert (model.spec.input_kind, model.spec.cell, model.spec.readout) == (InputKind.LINEAR, CellType.RNN_RELU,
                                                                              Readout.MEAN)
    x = random_inputs(model, seed=3)
    assert relative_error(_ours(model, x), keras.ops.convert_to_numpy(kmodel(x))) <= 1e-5


def test_functional_model_with_folded_dense_and_no_head(tmp_path):
    """Float-declared ids into an Embedding, a Dense folded into the table, a bidirectional GRU
    then a GRU returning sequences and no Dense: the decoder is an identity."""
    inp = keras.Input((None,))
    x = L.Dense(7)(L.Embedding(10, 4)(inp))
    x = L.GRU(4, return_sequences=True)(L.Bidirectional(L.GRU(3, return_sequences=True))(x))
    kmodel = keras.Model(inp, x)
    _randomize(kmodel)
    kmodel.save(tmp_path / "m.keras")
    model = import_keras(tmp_path / "m.keras")
    assert model.spec.input_kind is InputKind.EMBEDDING and model.spec.embed_size == 7
    assert [layer.bidirectional for layer in model.spec.layers] == [True, False]
    assert torch.equal(model.decoder.weight, torch.eye(4))
    x = random_inputs(model, seed=4)
    assert relative_error(_ours(model, x), keras.ops.convert_to_numpy(kmodel(x))) <= 1e-5


@pytest.mark.parametrize("drop", [False, True])
def test_final_softmax_is_the_output_activation_or_dropped(tmp_path, drop):
    kmodel = keras.Sequential([keras.Input((None, 4)), L.GRU(5), L.Dense(3, activation="softmax")])
    _randomize(kmodel)
    kmodel.save(tmp_path / "m.keras")
    model = import_keras(tmp_path / "m.keras", drop_softmax=drop)
    assert model.spec.output_activation is (OutputActivation.NONE if drop else OutputActivation.SOFTMAX)
    x = random_inputs(model, seed=2)
    probs = torch.softmax(torch.as_tensor(_ours(model, x)), -1).numpy()  # forward returns the logits
    assert relative_error(probs, keras.ops.convert_to_numpy(kmodel(x))) <= 1e-5


@pytest.mark.parametrize("layers, named", [
    ([L.GRU(5, reset_after=False, name="old_gru"), L.Dense(2)], "'old_gru' (GRU) has reset_after=False"),
    ([L.Conv1D(3, 2, name="conv"), L.LSTM(4), L.Dense(2)], "'conv' (Conv1D) is not supported"),
    ([L.LSTM(4, recurrent_activation="hard_sigmoid", name="hard"), L.Dense(2)], "'hard' (LSTM) has activation"),
    ([L.Bidirectional(L.LSTM(4), name="bi_last"), L.Dense(2)], "'bi_last' (Bidirectional) has return_sequences"),
    ([L.Masking(name="mask"), L.LSTM(4), L.Dense(2)], "'mask' (Masking) is not supported"),
])
def test_unsupported_layers_are_refused_by_name(tmp_path, layers, named):
    kmodel = keras.Sequential([keras.Input((None, 4)), *layers])
    kmodel.save(tmp_path / "m.keras")
    with pytest.raises(ValueError, match=named.replace("(", r"\(").replace(")", r"\)")):
        import_keras(tmp_path / "m.keras")


def test_not_a_keras_file(tmp_path):
    with pytest.raises(ValueError, match="ends in .keras or .h5"):
        import_keras(tmp_path / "m.onnx")
    bad = tmp_path / "m.keras"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="keras cannot load it"):
        import_keras(bad)
