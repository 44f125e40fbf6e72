"""Steps shared by the transform-domain verbs: which tensors, may they be replaced, write back.

A target is a float32 2-D weight found like a pruning target (rnnslim.prune.targets:
INPUT = W_ih, RECURRENT = W_hh per layer, PROJECTION, EMBEDDING, OUTPUT), so LSTM, GRU
and plain RNN layers of a SequenceModel or of a user's own module are found the same way.
A tensor already stored another way (pruned: sparse_*; quantized layers have no float
weight at all) is refused: replacing its storage would silently drop that compression.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from rnnslim.io.transform_encoding import TRANSFORM_ENCODINGS
from rnnslim.prune.targets import PrunableTensor, TargetKind, prunable_tensors
from rnnslim.results import EditResult


@dataclass
class TransformResult(EditResult):
    """What a transform verb did: {"method": {...}, "tensors": {name: {...}}, "total": {...}}."""

    report: dict = field(default_factory=dict)

    def __str__(self) -> str:
        lines = [f"{self.report.get('method', {})}"]
        for name, r in self.report.get("tensors", {}).items():
            lines.append(f"  {name:40s} {str(tuple(r['shape'])):14s} rel. error {r['relative_error']:.4f}  "
                         f"{r['stored_bytes']:,} bytes")
        t = self.report.get("total")
        if t:
            lines.append(f"  total: {t['stored_bytes']:,} of {t['fp32_bytes']:,} fp32 bytes "
                         f"({t['bytes_fraction']:.3f})")
        return "\n".join(lines)


def transform_targets(model: nn.Module, targets: Sequence[TargetKind], layers: Sequence[int] | None,
                      verb: str) -> list[tuple[PrunableTensor, nn.Parameter]]:
    """(target, parameter) pairs a transform verb may replace; a clear error for anything else."""
    found = prunable_tensors(model, targets, layers)
    if not found:
        raise ValueError(f"{verb}: no float weight matrices of kinds {[TargetKind(t).value for t in targets]}"
                         f"{' in layers ' + str(list(layers)) if layers is not None else ''} "
                         "(quantized layers have none: put quantization after this stage)")
    params = dict(model.named_parameters())
    encodings = getattr(model, "tensor_encodings", None) or {}
    out = []
    for t in found:
        p = params[t.name]
        entry = encodings.get(t.name, {"encoding": "dense"})
        enc = entry.get("encoding", "dense")
        if enc not in TRANSFORM_ENCODINGS and (enc != "dense" or len(entry) > 1):
            raise ValueError(f"{verb}: {t.name} is already stored as {enc} {entry} (pruned or quantized); "
                             f"{verb} would drop that. Apply {verb} to the dense model (the dct_sparsify "
                             "stage quantizes its coefficients itself with `bits`)")
        if p.dim() != 2:
            raise ValueError(f"{verb}: {t.name} has shape {tuple(p.shape)}; only 2-D weight matrices are supported")
        if p.dtype != torch.float32:
            raise ValueError(f"{verb}: {t.name} is {str(p.dtype).removeprefix('torch.')}; transform storage "
                             "starts from float32 weights (put the cast stage after this one)")
        out.append((t, p))
    return out


def relative_error(new: Tensor, old: Tensor) -> float:
    return float((new.double() - old.double()).norm() / old.double().norm().clamp(min=1e-300))


@torch.no_grad()
def write_back_(model: nn.Module, new: dict[str, Tensor], entries: dict[str, dict], history: dict) -> None:
    """Copy the new weights in place (nn.LSTM/GRU flat weights stay valid, see prune/masks.py),
    record their encodings in model.tensor_encodings and `history` in model.history."""
    params = dict(model.named_parameters())
    for name, w in new.items():
        params[name].copy_(w)
    encodings = dict(getattr(model, "tensor_encodings", None) or {})
    encodings.update(entries)
    model.tensor_encodings = encodings
    model.history = [*(getattr(model, "history", None) or []), history]


def totals(tensors: dict[str, dict]) -> dict:
    fp32 = sum(r["fp32_bytes"] for r in tensors.values())
    stored = sum(r["stored_bytes"] for r in tensors.values())
    return {"fp32_bytes": fp32, "stored_bytes": stored, "bytes_fraction": stored / fp32 if fp32 else 0.0}
