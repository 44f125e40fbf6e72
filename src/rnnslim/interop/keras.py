"""Import a Keras 3 recurrent model (.keras or legacy .h5) as an rnnslim SequenceModel.

    model = import_keras("kws.keras")          # SequenceModel, outputs equal to Keras' within 1e-5

What is understood, as one chain of layers (Sequential, or a Functional model without branches):

    Input -> [Embedding | Normalization (adapted) / Dense (linear) on the features] -> Dropout* ->
    LSTM / GRU (reset_after=True) / SimpleRNN layers (optionally in Bidirectional(merge_mode="concat"))
    -> [GlobalAveragePooling1D] -> [Dense / TimeDistributed(Dense) (linear, or softmax as the last activation)]

A final softmax becomes ModelSpec.output_activation (the model computes logits; whoever needs
probabilities applies it, see rnnslim.models.sequence.apply_output_activation).

return_sequences=False on the last recurrent layer is the readout "last", a
GlobalAveragePooling1D is "mean", otherwise the Dense runs on every step ("all"). A Dense right
after an Embedding is folded into the embedding table; a Normalization (and Dense layers after
it) becomes the input Linear, so the model reads the raw features as the Keras model does.
Dropout is ignored (inference). Anything else is refused with a ValueError naming the layer:
masking (Masking, Embedding(mask_zero=True)), stateful or go_backwards layers outside
Bidirectional, non-default activations (torch's cells are fixed: recurrent_activation sigmoid,
activation tanh; SimpleRNN tanh or relu), return_state, and GRU(reset_after=False): Keras then
applies the reset gate to h before the recurrent matmul, torch (and rnnslim's kernels) after it,
so the two compute different functions.

Weights: Keras kernels are (in, G*H) and recurrent kernels (H, G*H) -> torch (G*H, in) / (G*H, H);
gate order LSTM i,f,c,o = torch i,f,g,o; GRU z,r,h -> torch r,z,n; GRU bias (2, 3H) = [input
bias, recurrent bias] -> bias_ih, bias_hh; LSTM / SimpleRNN bias -> bias_ih (bias_hh = 0).
Keras is batch-first (B, T, ...); SequenceModel is time-major (T, B, ...).

Keras is an optional extra (`pip install 'rnnslim[keras]'`); it is loaded with the torch
backend (KERAS_BACKEND=torch, set here unless keras was already imported: the weights are read
as numpy, so another backend works as well), with `safe_mode=True` (no code in the file runs).
Importing keras takes about 4 s on top of torch. Every import ends with a parity check on
random inputs against the Keras model itself.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rnnslim.interop.assemble import (
    DirectionWeights,
    ImportedLayer,
    ImportedModel,
    build_sequence_model,
    check_parity,
    reorder_gates,
)
from rnnslim.models.sequence import InputKind, Readout, SequenceModel, apply_output_activation
from rnnslim.recurrent.gates import CellType

SUFFIXES = (".keras", ".h5", ".hdf5")
_RECURRENT = ("LSTM", "GRU", "SimpleRNN")
_PASS_THROUGH = ("InputLayer", "Dropout", "SpatialDropout1D", "GaussianDropout", "GaussianNoise", "AlphaDropout")
_KNOWN = (*_PASS_THROUGH, *_RECURRENT, "Bidirectional", "Embedding", "Dense", "TimeDistributed", "Normalization",
          "GlobalAveragePooling1D", "Activation")
# Keras gate letters per cell, and the same letters in torch's order
_GATE_ORDER = {"LSTM": ("ifco", "ifco"), "GRU": ("zrh", "rzh"), "SimpleRNN": ("h", "h")}


def load_keras():
    """The keras module, imported with the torch backend unless it was imported before."""
    if "keras" not in sys.modules:
        os.environ["KERAS_BACKEND"] = "torch"
    try:
        import keras
    except ImportError as e:
        raise ImportError("importing Keras models needs keras and h5py: pip install 'rnnslim[keras]'") from e
    return keras


def import_keras(path: str | os.PathLike, drop_softmax: bool = False, check: bool = True) -> SequenceModel:
    """The SequenceModel equal to the Keras model in `path` (.keras / .h5).

    A final softmax is kept as spec.output_activation (forward, the integer kernel and the C
    export return the logits; the caller applies it); `drop_softmax=True` leaves it out. The
    parity check compares softmax(ours) with Keras' outputs either way.
    `check=False` skips the parity check (it runs the Keras model on a few random inputs)."""
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise ValueError(f"{path}: a Keras model file ends in .keras or .h5 (got {path.suffix or 'no suffix'!r})")
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    keras = load_keras()
    try:
        kmodel = keras.saving.load_model(str(path), compile=False, safe_mode=True)
    except Exception as e:  # noqa: BLE001 - keras raises many kinds; one line names the file
        raise ValueError(f"{path}: keras cannot load it ({type(e).__name__}: {str(e).splitlines()[0][:300]})") from None
    imported = read_keras_model(kmodel)
    model = build_sequence_model(imported, drop_activation=drop_softmax)
    if check:
        model.import_parity = keras_parity(kmodel, model, imported, str(path))  # max relative error
    return model


@dataclass
class _Chain:
    """What the walk along the layers has found so far."""

    model: ImportedModel
    ended: bool = False  # a recurrent layer returned one vector per sequence: only the head may follow


def read_keras_model(kmodel) -> ImportedModel:
    """Walk a loaded Keras model's layers into an ImportedModel (weights converted, nothing built)."""
    for layer in kmodel.layers:  # unsupported kinds first: their names say more than a broken chain
        inner = type(getattr(layer, "layer", None)).__name__
        if type(layer).__name__ == "TimeDistributed" and inner != "Dense":
            raise ValueError(f"layer {layer.name!r} (TimeDistributed of {inner}) is not supported: only of a Dense")
        if type(layer).__name__ not in _KNOWN:
            raise ValueError(f"layer {layer.name!r} ({type(layer).__name__}) is not supported: rnnslim imports "
                             "Embedding / Dense -> LSTM / GRU / SimpleRNN (Bidirectional) -> Dense chains")
    layers = chain_layers(kmodel)
    spec = kmodel.inputs[0]
    ids = len(spec.shape) == 2  # (batch, time) token ids (Keras' Input may declare them float: Embedding casts)
    feat = spec.shape[-1] if len(spec.shape) == 3 else None
    if not ids and feat is None:
        raise ValueError(f"model input of shape {tuple(spec.shape)}: expected (batch, time) token ids or (batch, time, "
                         "features) floats")
    chain = _Chain(ImportedModel(input_kind=InputKind.EMBEDDING if ids else InputKind.IDENTITY,
                                 input_size=int(feat or 1)))  # features: set again by the first layer
    for layer in layers:
        try:
            _read_layer(chain, layer)
        except (KeyError, IndexError, TypeError, AttributeError) as e:  # an unexpected config: one clear line
            raise ValueError(f"layer {layer.name!r} ({type(layer).__name__}) cannot be read ({type(e).__name__}: "
                             f"{e})") from None
    if not chain.model.layers:
        raise ValueError("the model has no LSTM, GRU or SimpleRNN layer")
    return chain.model


def _read_layer(chain: _Chain, layer) -> None:
    kind = type(layer).__name__
    if kind in _PASS_THROUGH:
        return
    if kind == "Embedding":
        _embedding(chain, layer)
    elif kind in _RECURRENT or kind == "Bidirectional":
        _recurrent(chain, layer)
    elif kind == "Dense":
        _dense(chain, layer)
    elif kind == "TimeDistributed":  # of a Dense (checked above): the same Dense on every step
        _dense(chain, layer.layer)
    elif kind == "GlobalAveragePooling1D":
        _pooling(chain, layer)
    elif kind == "Normalization":
        _normalization(chain, layer)
    else:
        _activation(chain, layer)


def chain_layers(kmodel) -> list:
    """The model's layers in order; refuses models whose layers do not form one chain."""
    if len(kmodel.inputs) != 1 or len(kmodel.outputs) != 1:
        raise ValueError(f"the model has {len(kmodel.inputs)} inputs and {len(kmodel.outputs)} outputs; rnnslim "
                         "imports one input, one output")
    layers = [layer for layer in kmodel.layers if type(layer).__name__ != "InputLayer"]
    prev = _producer(kmodel.inputs[0])  # the InputLayer
    for layer in layers:
        try:
            source = _producer(layer.input)
        except (AttributeError, ValueError):  # a layer with several inputs
            raise ValueError(f"layer {layer.name!r} has several inputs; rnnslim imports a chain of layers") from None
        if source is not prev:
            raise ValueError(f"layer {layer.name!r} does not read the previous layer's output; rnnslim imports a "
                             "chain of layers (no branches, no skip connections)")
        prev = layer
    if _producer(kmodel.outputs[0]) is not prev:
        raise ValueError("the model's output is not its last layer's; rnnslim imports a chain of layers")
    return layers


def _producer(tensor):
    """The layer that computed a symbolic Keras tensor (a loaded model's layers may have been
    called several times while it was rebuilt, so tensors are compared by their producer)."""
    return tensor._keras_history.operation


def _embedding(chain: _Chain, layer) -> None:
    m = chain.model
    if m.input_kind is not InputKind.EMBEDDING or m.input_weight is not None or m.layers:
        raise ValueError(f"layer {layer.name!r} (Embedding) must come first, on integer token ids")
    if layer.get_config().get("mask_zero"):
        raise ValueError(f"layer {layer.name!r} (Embedding) has mask_zero=True: masked (padded) steps are not "
                         "supported; set mask_zero=False")
    (table,) = layer.get_weights()  # (V, E)
    m.input_weight = torch.as_tensor(np.asarray(table, dtype=np.float32))
    m.input_size = int(table.shape[0])


def _linear_activation(layer, allow_softmax: bool) -> str | None:
    act = layer.get_config().get("activation", "linear")
    if act in (None, "linear"):
        return None
    if act == "softmax" and allow_softmax:
        return "softmax"
    raise ValueError(f"layer {layer.name!r} ({type(layer).__name__}) has activation {act!r}; rnnslim imports "
                     "linear Dense layers (a softmax only as the model's last activation)")


def _dense(chain: _Chain, layer) -> None:
    m = chain.model
    kernel, *bias = layer.get_weights()  # kernel (in, out), bias (out,)
    w = torch.as_tensor(np.asarray(kernel, dtype=np.float32)).t().contiguous()  # (out, in)
    b = torch.as_tensor(np.asarray(bias[0], dtype=np.float32)) if bias else torch.zeros(w.shape[0])
    if not m.layers:  # in front of the recurrent layers: the input part
        _linear_activation(layer, allow_softmax=False)
        _input_affine(m, w, b, f"layer {layer.name!r} (Dense)")
        return
    if m.decoder_weight is not None or m.final_activation:
        raise ValueError(f"layer {layer.name!r} (Dense) follows the output Dense; rnnslim models have one output "
                         "Linear")
    m.final_activation = _linear_activation(layer, allow_softmax=True)
    m.decoder_weight, m.decoder_bias = w, b
    chain.ended = True


def _input_affine(m: ImportedModel, w: torch.Tensor, b: torch.Tensor, what: str) -> None:
    """x -> x W^T + b in front of the recurrent layers: folded into the embedding table or an
    earlier input Linear, else the input Linear (out, in)."""
    if m.input_kind is InputKind.EMBEDDING:
        if m.input_weight is None:
            raise ValueError(f"{what} reads token ids; put an Embedding first")
        m.input_weight = m.input_weight @ w.t() + b  # (V, E) -> (V, out)
    elif m.input_kind is InputKind.LINEAR:
        m.input_weight, m.input_bias = w @ m.input_weight, w @ m.input_bias + b  # two affine maps in one
    else:
        m.input_kind, m.input_weight, m.input_bias, m.input_size = InputKind.LINEAR, w, b, int(w.shape[1])


def _normalization(chain: _Chain, layer) -> None:
    """An adapted Normalization on the features, (x - mean) / max(sqrt(var), eps): an affine map."""
    keras = load_keras()
    cfg = layer.get_config()
    what = f"layer {layer.name!r} (Normalization)"
    if chain.model.layers or chain.model.input_kind is InputKind.EMBEDDING:
        raise ValueError(f"{what} must come before the recurrent layers, on float features")
    if tuple(cfg.get("axis") or ()) not in ((-1,), (2,)):
        raise ValueError(f"{what} normalises axis {cfg.get('axis')}; rnnslim folds only per-feature (axis=-1)")
    mean = keras.ops.convert_to_numpy(layer.mean).astype(np.float64).reshape(-1)
    std = np.maximum(np.sqrt(keras.ops.convert_to_numpy(layer.variance).astype(np.float64).reshape(-1)),
                     keras.backend.epsilon())
    scale, shift = (std, mean) if cfg.get("invert") else (1.0 / std, -mean / std)  # y = x * scale + shift
    w = torch.diag(torch.as_tensor(scale, dtype=torch.float32))  # (F, F)
    _input_affine(chain.model, w, torch.as_tensor(shift, dtype=torch.float32), what)


def _pooling(chain: _Chain, layer) -> None:
    m = chain.model
    if not m.layers or chain.ended or m.readout is not Readout.ALL:
        raise ValueError(f"layer {layer.name!r} (GlobalAveragePooling1D) must follow a recurrent layer with "
                         "return_sequences=True")
    if layer.get_config().get("data_format", "channels_last") != "channels_last":
        raise ValueError(f"layer {layer.name!r} (GlobalAveragePooling1D) must average over time (channels_last)")
    if layer.get_config().get("keepdims"):
        raise ValueError(f"layer {layer.name!r} (GlobalAveragePooling1D) has keepdims=True; use keepdims=False")
    m.readout = Readout.MEAN
    chain.ended = True


def _activation(chain: _Chain, layer) -> None:
    m = chain.model
    act = layer.get_config().get("activation")
    if act == "linear":
        return
    if act != "softmax" or not m.layers or m.final_activation:
        raise ValueError(f"layer {layer.name!r} (Activation {act!r}) is not supported (only a final softmax)")
    m.final_activation = "softmax"
    chain.ended = True


def _recurrent(chain: _Chain, layer) -> None:
    m = chain.model
    if chain.ended:
        raise ValueError(f"layer {layer.name!r} ({type(layer).__name__}) reads one vector per sequence (the layer "
                         "before it has return_sequences=False or is a pooling / Dense head); rnnslim stacks "
                         "recurrent layers that return sequences")
    if m.input_kind is InputKind.EMBEDDING and m.input_weight is None:
        raise ValueError(f"layer {layer.name!r} reads token ids; put an Embedding first")
    if type(layer).__name__ == "Bidirectional":
        cfg = layer.get_config()
        if cfg.get("merge_mode") != "concat":
            raise ValueError(f"layer {layer.name!r} (Bidirectional) has merge_mode={cfg.get('merge_mode')!r}; "
                             "rnnslim (like torch) concatenates the directions: use merge_mode='concat'")
        fwd, bwd = layer.forward_layer, layer.backward_layer
        if type(fwd) is not type(bwd) or fwd.go_backwards or not bwd.go_backwards:
            raise ValueError(f"layer {layer.name!r} (Bidirectional) needs the same layer type both ways, the "
                             "backward one with go_backwards=True")
        cells = [_cell(fwd, layer.name, inside_bidirectional=True), _cell(bwd, layer.name, inside_bidirectional=True)]
        returns = fwd.return_sequences
        if not returns:
            raise ValueError(f"layer {layer.name!r} (Bidirectional) has return_sequences=False: Keras then reads the "
                             "backward direction's final state (time step 0), rnnslim's 'last' readout reads time "
                             "step T-1 of both directions; use return_sequences=True (with pooling) or a "
                             "forward-only last layer")
        imported = ImportedLayer(cells[0][0], cells[0][1], [cells[0][2], cells[1][2]], layer.name)
    else:
        cell, units, weights = _cell(layer, layer.name, inside_bidirectional=False)
        returns = layer.return_sequences
        imported = ImportedLayer(cell, units, [weights], layer.name)
    if not m.layers and m.input_kind is InputKind.IDENTITY:  # features straight into the first layer
        m.input_size = int(imported.directions[0].weight_ih.shape[1])
    m.layers.append(imported)
    if not returns:
        m.readout = Readout.LAST
        chain.ended = True


def _cell(layer, name: str, inside_bidirectional: bool) -> tuple[CellType, int, DirectionWeights]:
    """Check one LSTM / GRU / SimpleRNN layer's options and convert its weights."""
    kind = type(layer).__name__
    if kind not in _RECURRENT:
        raise ValueError(f"layer {name!r} wraps a {kind}; rnnslim imports LSTM, GRU and SimpleRNN")
    cfg = layer.get_config()
    what = f"layer {name!r} ({kind})"
    if cfg.get("stateful"):
        raise ValueError(f"{what} is stateful; import a stateless copy (state is carried by the caller in rnnslim)")
    if cfg.get("go_backwards") and not inside_bidirectional:
        raise ValueError(f"{what} has go_backwards=True (outside Bidirectional): not supported")
    if cfg.get("return_state"):
        raise ValueError(f"{what} has return_state=True; rnnslim models have one output")
    if kind == "GRU" and not cfg.get("reset_after", True):
        raise ValueError(f"{what} has reset_after=False: Keras then applies the reset gate to h before the recurrent "
                         "matmul, torch and rnnslim after it, so the outputs would differ; retrain with "
                         "reset_after=True (the Keras default)")
    act = cfg.get("activation")
    if kind == "SimpleRNN":
        if act not in ("tanh", "relu"):
            raise ValueError(f"{what} has activation {act!r}; rnnslim's simple RNN uses tanh or relu")
        cell = CellType.RNN_TANH if act == "tanh" else CellType.RNN_RELU
    else:
        if act != "tanh" or cfg.get("recurrent_activation") != "sigmoid":
            raise ValueError(f"{what} has activation {act!r} / recurrent_activation "
                             f"{cfg.get('recurrent_activation')!r}; rnnslim's cells use tanh / sigmoid")
        cell = CellType.LSTM if kind == "LSTM" else CellType.GRU
    units = int(cfg["units"])
    kernel, recurrent, *bias = layer.get_weights()  # (I, G*H), (H, G*H), [bias]
    order, torch_order = _GATE_ORDER[kind]
    w_ih = reorder_gates(np.asarray(kernel).T, order, torch_order, units)  # (G*H, I)
    w_hh = reorder_gates(np.asarray(recurrent).T, order, torch_order, units)  # (G*H, H)
    zeros = torch.zeros(w_ih.shape[0])
    if not bias:
        b_ih, b_hh = zeros, zeros.clone()
    elif np.ndim(bias[0]) == 2:  # GRU reset_after: (2, 3H) = [input bias, recurrent bias]
        b_ih = reorder_gates(bias[0][0], order, torch_order, units)
        b_hh = reorder_gates(bias[0][1], order, torch_order, units)
    else:
        b_ih, b_hh = reorder_gates(bias[0], order, torch_order, units), zeros
    return cell, units, DirectionWeights(w_ih, w_hh, b_ih, b_hh)


def random_inputs(model: SequenceModel, batch: int = 3, steps: int = 7, seed: int = 0) -> np.ndarray:
    """Batch-first inputs for a parity check: token ids (B, T) int32 or features (B, T, F) float32."""
    rng = np.random.default_rng(seed)
    spec = model.spec
    if spec.input_kind is InputKind.EMBEDDING:
        return rng.integers(0, spec.input_size, size=(batch, steps)).astype(np.int32)
    return rng.standard_normal((batch, steps, spec.input_size)).astype(np.float32)


def keras_parity(kmodel, model: SequenceModel, imported: ImportedModel, source: str) -> float:
    """Run both models on random inputs; ValueError unless they agree within PARITY_TOL."""
    keras = load_keras()
    batch, steps = kmodel.inputs[0].shape[:2]  # fixed by the Input, or None
    x = random_inputs(model, batch=int(batch or 3), steps=int(steps or 7))
    theirs = keras.ops.convert_to_numpy(kmodel(x, training=False))
    with torch.no_grad():
        xt = torch.as_tensor(x).long() if model.spec.input_kind is InputKind.EMBEDDING else torch.as_tensor(x)
        y, _ = model(xt.transpose(0, 1))  # time-major in, (T, B, O) or (B, O) out
        y = apply_output_activation(y, imported.final_activation or "none")
        ours = (y.transpose(0, 1) if model.spec.readout is Readout.ALL else y).numpy()
    return check_parity(ours, theirs, source)
