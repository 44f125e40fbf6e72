"""Which weight tensors a pruning method may touch, found by module type and name.

In a SequenceModel (names as in ../shared/models, one torch module per layer):

    embedding.weight / input_proj.weight              EMBEDDING  (the input encoder)
    rnn.layers.{k}.weight_ih_l0[_reverse]             INPUT      (G*H, I)
    rnn.layers.{k}.weight_hh_l0[_reverse]             RECURRENT  (G*H, P)
    rnn.layers.{k}.weight_hr_l0[_reverse]             PROJECTION (P, H), LSTM proj_size only
    decoder.weight                                    OUTPUT     (O, P*D)
    rnn.bottlenecks.{k}.weight / decoder_proj.weight  INPUT of layer k / OUTPUT (low-rank factors)

Any other module works too: tensors of every torch.nn.LSTM/GRU/RNN are classified by
their name (weight_ih_l{k} -> INPUT of layer k, ...), nn.Embedding weights are EMBEDDING
and nn.Linear weights OUTPUT. Biases are never targets. A tensor shared by two modules
(tied embedding/decoder) is listed once, under its first name (as save_model stores it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from torch import nn

from rnnslim.io.transform_encoding import TRANSFORM_ENCODINGS
from rnnslim.recurrent.gates import CellType, cell_of_module


class TargetKind(str, Enum):
    INPUT = "input"
    RECURRENT = "recurrent"
    PROJECTION = "projection"
    EMBEDDING = "embedding"
    OUTPUT = "output"


RECURRENT_KINDS = (TargetKind.INPUT, TargetKind.RECURRENT, TargetKind.PROJECTION)
ALL_KINDS = tuple(TargetKind)

_RNN_WEIGHT = re.compile(r"^weight_(ih|hh|hr)_l(\d+)(_reverse)?$")
_KIND_OF = {"ih": TargetKind.INPUT, "hh": TargetKind.RECURRENT, "hr": TargetKind.PROJECTION}
_STACK_LAYER = re.compile(r"(?:^|\.)layers\.(\d+)$")
_NECK = re.compile(r"(?:^|\.)bottlenecks\.(\d+)$")  # low-rank W_ih input factor of layer k (rnnslim.lowrank)


@dataclass(frozen=True)
class PrunableTensor:
    """One weight tensor a pruning method may mask.

    layer: recurrent layer index (position in a RecurrentStack, or k of `_l{k}` in a
    multi-layer torch module); None for embedding/output. cell: the recurrent cell type.
    """

    name: str
    kind: TargetKind
    shape: tuple[int, ...]
    layer: int | None = None
    reverse: bool = False
    cell: CellType | None = None

    @property
    def numel(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n

    def __str__(self) -> str:
        where = f" layer {self.layer}" + (" reverse" if self.reverse else "") if self.layer is not None else ""
        return f"{self.name} [{self.kind.value}{where}] {tuple(self.shape)}"


def _rnn_layer_offset(path: str) -> int:
    """Layer index of a single-layer module inside a RecurrentStack (`...layers.{k}`), else 0."""
    m = _STACK_LAYER.search(path)
    return int(m.group(1)) if m else 0


def prunable_tensors(model: nn.Module, targets: list[TargetKind] | tuple[TargetKind, ...] | None = None,
                     layers: list[int] | tuple[int, ...] | None = None) -> list[PrunableTensor]:
    """Weight tensors of the requested kinds (default: all), optionally only some recurrent layers.

    `layers` filters recurrent tensors by layer index; embedding/output are kept when asked for.
    """
    kinds = set(ALL_KINDS if targets is None else (TargetKind(t) for t in targets))
    seen: set[int] = set()
    out: list[PrunableTensor] = []
    for path, mod in model.named_modules():
        prefix = f"{path}." if path else ""
        for pname, p in mod.named_parameters(recurse=False):
            if id(p) in seen:
                continue
            item = None
            if isinstance(mod, nn.RNNBase):
                m = _RNN_WEIGHT.match(pname)
                if m:
                    layer = _rnn_layer_offset(path) + int(m.group(2))
                    item = PrunableTensor(prefix + pname, _KIND_OF[m.group(1)], tuple(p.shape), layer,
                                          m.group(3) is not None, cell_of_module(mod))
            elif isinstance(mod, nn.Embedding) and pname == "weight":
                item = PrunableTensor(prefix + pname, TargetKind.EMBEDDING, tuple(p.shape))
            elif isinstance(mod, nn.Linear) and pname == "weight" and _NECK.search(path):
                item = PrunableTensor(prefix + pname, TargetKind.INPUT, tuple(p.shape), int(_NECK.search(path).group(1)))
            elif isinstance(mod, nn.Linear) and pname == "weight":
                kind = TargetKind.EMBEDDING if path == "input_proj" else TargetKind.OUTPUT
                item = PrunableTensor(prefix + pname, kind, tuple(p.shape))
            seen.add(id(p))
            if item is None or item.kind not in kinds:
                continue
            if layers is not None and item.layer is not None and item.layer not in layers:
                continue
            out.append(item)
    return out


def target_names(model: nn.Module, targets=None, layers=None) -> list[str]:
    """Names of `prunable_tensors(model, targets, layers)`."""
    return [t.name for t in prunable_tensors(model, targets, layers)]


def refuse_transform_coded(model: nn.Module, names: list[str]) -> None:
    """Pruning a tensor stored as DCT coefficients / circulant blocks (rnnslim.transform) would be
    undone at save time (the weights are re-projected into the transform domain): refuse it."""
    enc = getattr(model, "tensor_encodings", None) or {}
    coded = [n for n in names if enc.get(n, {}).get("encoding") in TRANSFORM_ENCODINGS]
    if coded:
        raise ValueError(f"{', '.join(coded[:4])}{' ...' if len(coded) > 4 else ''} "
                         f"{'is' if len(coded) == 1 else 'are'} stored as {enc[coded[0]]['encoding']} (transform "
                         "domain), where pruned zeros would not survive saving: prune before the transform stage, "
                         "or leave these tensors out (targets / layers)")


def describe(model: nn.Module, targets=None) -> str:
    """One line per prunable tensor (for printing what a method will touch)."""
    return "\n".join(str(t) for t in prunable_tensors(model, targets))
