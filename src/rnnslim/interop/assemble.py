"""The framework-neutral middle of every importer: what a foreign file was found to hold, in
PyTorch's conventions, and the SequenceModel built from it.

An importer (rnnslim.interop.keras, rnnslim.interop.onnx_import) reads its file, converts every
weight to torch's layout and gate order, and fills an `ImportedModel`; `build_sequence_model`
then makes the SequenceModel and copies the weights in. Keeping this step in one place means
both importers produce the same kind of model (same tensor names, same checks), and
`check_parity` measures their outputs against the source framework the same way.

    input part   embedding (V, E) | Linear (E, F) + (E,) | identity
    layers       per layer and direction: weight_ih (G*H, I), weight_hh (G*H, H),
                 bias_ih (G*H,), bias_hh (G*H,), gates in torch order (LSTM i,f,g,o; GRU r,z,n)
    readout      all / last / mean
    decoder      Linear (O, D) + (O,) (an identity when the source model ends at a recurrent layer;
                 tied to the embedding when the file holds the same (V, E) matrix for both)
    activation   a final softmax / log_softmax: ModelSpec.output_activation (forward returns the
                 logits, as the integer kernel and the C export do; the caller applies it)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from rnnslim.models.sequence import (
    InputKind,
    LayerShape,
    ModelSpec,
    OutputActivation,
    Readout,
    SequenceModel,
)
from rnnslim.recurrent.gates import CellType

PARITY_TOL = 1e-5  # max |ours - theirs| / max |theirs| an import must reach


@dataclass
class DirectionWeights:
    """One direction of one recurrent layer, torch layout and gate order."""

    weight_ih: Tensor  # (G*H, I)
    weight_hh: Tensor  # (G*H, H)
    bias_ih: Tensor  # (G*H,)
    bias_hh: Tensor  # (G*H,)


@dataclass
class ImportedLayer:
    cell: CellType
    hidden_size: int
    directions: list[DirectionWeights]  # 1 or 2 (forward, backward)
    name: str = ""  # the layer / node name in the source file, for messages

    @property
    def bidirectional(self) -> bool:
        return len(self.directions) == 2

    @property
    def output_size(self) -> int:
        return self.hidden_size * len(self.directions)


@dataclass
class ImportedModel:
    """Everything an importer found, ready for build_sequence_model."""

    input_kind: InputKind
    input_size: int  # vocabulary size or number of input features
    layers: list[ImportedLayer] = field(default_factory=list)
    input_weight: Tensor | None = None  # embedding (V, E) or input Linear (E, F)
    input_bias: Tensor | None = None  # input Linear (E,)
    readout: Readout = Readout.ALL
    decoder_weight: Tensor | None = None  # (O, D); None: identity
    decoder_bias: Tensor | None = None  # (O,)
    final_activation: str | None = None  # "softmax" / "log_softmax" after the decoder, or None


def reorder_gates(w: np.ndarray | Tensor, order: str, torch_order: str, hidden_size: int) -> Tensor:
    """Rows of a packed weight (G*H, ...) or bias (G*H,) from gate order `order` (e.g. "iofc")
    to `torch_order` (e.g. "ifco": the same letters in torch's order) as a float32 Tensor."""
    t = torch.tensor(np.asarray(w, dtype=np.float32))  # a copy: onnx arrays are read-only
    if t.shape[0] != len(order) * hidden_size:
        raise ValueError(f"a packed weight with {t.shape[0]} rows is not {len(order)} gates x {hidden_size} units")
    blocks = dict(zip(order, t.split(hidden_size, dim=0)))
    return torch.cat([blocks[g] for g in torch_order], dim=0).contiguous()


def _check_layers(m: ImportedModel) -> CellType:
    if not m.layers:
        raise ValueError("the model has no recurrent layer (LSTM, GRU or simple RNN); rnnslim imports recurrent models")
    cells = {layer.cell for layer in m.layers}
    if len(cells) > 1:
        names = ", ".join(f"{layer.name or k}: {layer.cell.value}" for k, layer in enumerate(m.layers))
        raise ValueError(f"recurrent layers of different kinds ({names}); an rnnslim model has one cell type")
    return cells.pop()


def _embed_size(m: ImportedModel) -> int:
    if m.input_kind is InputKind.IDENTITY:
        return m.input_size
    if m.input_weight is None:
        raise ValueError(f"input kind {m.input_kind.value} needs its weight")
    return int(m.input_weight.shape[1] if m.input_kind is InputKind.EMBEDDING else m.input_weight.shape[0])


def build_sequence_model(m: ImportedModel, drop_activation: bool = False) -> SequenceModel:
    """The SequenceModel holding `m`'s weights (eval mode). A final softmax / log_softmax becomes
    spec.output_activation, or is left out with `drop_activation` (the model is then the logits)."""
    cell = _check_layers(m)
    out_size = m.layers[-1].output_size
    dec_w = torch.eye(out_size) if m.decoder_weight is None else m.decoder_weight
    dec_b = torch.zeros(dec_w.shape[0]) if m.decoder_bias is None else m.decoder_bias
    tied = (m.input_kind is InputKind.EMBEDDING and m.decoder_weight is not None
            and tuple(dec_w.shape) == tuple(m.input_weight.shape) and torch.equal(dec_w, m.input_weight))
    spec = ModelSpec(cell=cell, input_kind=m.input_kind, input_size=m.input_size, embed_size=_embed_size(m),
                     tie_weights=tied,
                     layers=[LayerShape(hidden_size=layer.hidden_size, bidirectional=layer.bidirectional)
                             for layer in m.layers],
                     output_size=int(dec_w.shape[0]), readout=m.readout,
                     output_activation=OutputActivation(m.final_activation or "none") if not drop_activation
                     else OutputActivation.NONE)
    model = SequenceModel(spec)
    with torch.no_grad():
        if m.input_kind is InputKind.EMBEDDING:
            _copy(model.embedding.weight, m.input_weight, "embedding")
        elif m.input_kind is InputKind.LINEAR:
            _copy(model.input_proj.weight, m.input_weight, "input Linear weight")
            _copy(model.input_proj.bias, torch.zeros(spec.embed_size) if m.input_bias is None else m.input_bias,
                  "input Linear bias")
        for layer, module in zip(m.layers, model.rnn.layers):
            for d, w in enumerate(layer.directions):
                sfx = "_l0_reverse" if d else "_l0"
                for part in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    _copy(getattr(module, part + sfx), getattr(w, part), f"{layer.name or 'layer'} {part}{sfx}")
        if not tied:  # a tied decoder shares the embedding's tensor (stored once, in flash once)
            _copy(model.decoder.weight, dec_w, "decoder weight")
        _copy(model.decoder.bias, dec_b, "decoder bias")
    return model.eval()


def _copy(dst: Tensor, src, what: str) -> None:
    src = torch.as_tensor(np.asarray(src, dtype=np.float32)) if not isinstance(src, Tensor) else src.float()
    if tuple(src.shape) != tuple(dst.shape):
        raise ValueError(f"{what}: shape {tuple(src.shape)} where the model needs {tuple(dst.shape)}")
    dst.copy_(src)


def relative_error(ours: np.ndarray, theirs: np.ndarray) -> float:
    """max |ours - theirs| / max |theirs| (float64)."""
    ours, theirs = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    if ours.shape != theirs.shape:
        return float("inf")
    return float(np.abs(ours - theirs).max() / max(np.abs(theirs).max(), 1e-30))


def check_parity(ours: np.ndarray, theirs: np.ndarray, source: str, tol: float = PARITY_TOL) -> float:
    """Raise ValueError unless the imported model's outputs match the source framework's."""
    if np.shape(ours) != np.shape(theirs):
        raise ValueError(f"{source}: the imported model's outputs have shape {np.shape(ours)}, the original's "
                         f"{np.shape(theirs)}; the import is wrong, please report the model")
    err = relative_error(ours, theirs)
    if not err <= tol:
        raise ValueError(f"{source}: the imported model differs from the original by {err:.3g} (max relative "
                         f"error; at most {tol:g} allowed); the import is wrong, please report the model")
    return err
