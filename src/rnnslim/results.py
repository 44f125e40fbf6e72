"""EditResult: what every compression verb returns, whatever the technique.

The common core (filled in by rnnslim.verbs for prune_ / quantize_ / factorize_ / distill_):

    family        "prune", "quantize", "factorize" or "distill"
    method        the config's class name ("UnstructuredPruning", "GPTQ", "LowRank", ...)
    changed       module paths whose tensors or class changed ("rnn.layers.0", "decoder"), the
                  descendants of a replaced module not listed again
    bytes_before  stored weight bytes before the edit: the tensors as rnnslim.io saves them
    bytes_after   (the model's tensor encodings applied: sparse, packed low-bit, lzma), tied
                  tensors once, manifest not included
    warnings      what the edit warned about (Python warnings it raised, layers it left alone)

The per-method functions (prune_units_, prune_unstructured_, dct_sparsify_, ...) return the
same types without the verb's measurements: bytes_before / bytes_after stay None and
`changed` empty there.

Each family's result extends it with its own detail: PruneResult (masks, per-tensor
sparsity), StructuredResult (kept units), QuantizeResult (per-layer formats), LowRankResult
(ranks), GradualResult / DistillResult (the training run).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from torch import nn


@dataclass(kw_only=True)
class EditResult:
    family: str = ""
    method: str = ""
    changed: list[str] = field(default_factory=list)
    bytes_before: int | None = None
    bytes_after: int | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def compression(self) -> float:
        """bytes_before / bytes_after (2.0: half the bytes); None when not measured."""
        return self.bytes_before / self.bytes_after if self.bytes_before and self.bytes_after else None

    def core(self) -> dict:
        """The common core as a dict (family, method, changed, bytes_before, bytes_after, warnings)."""
        return {f.name: getattr(self, f.name) for f in fields(EditResult)}

    def details(self) -> dict:
        """The subclass's own fields as a dict (asdict), without the common core: what a
        method records in the model's history before the verb measured anything."""
        core = {f.name for f in fields(EditResult)}
        return {k: v for k, v in asdict(self).items() if k not in core}

    def headline(self) -> str:
        """One line: method, bytes before -> after, what changed, warning count."""
        where = ", ".join(self.changed[:4]) + (f" and {len(self.changed) - 4} more" if len(self.changed) > 4 else "")
        size = ("stored bytes not measured (rnnslim's verbs measure them)" if self.compression is None else
                f"{self.bytes_before:,} -> {self.bytes_after:,} stored bytes ({self.compression:.2f}x)")
        line = f"{self.method or type(self).__name__}: {size}; changed: {where or 'nothing'}"
        return line + (f"; {len(self.warnings)} warning(s)" if self.warnings else "")


def stored_bytes(model: nn.Module) -> int:
    """Bytes of the model's tensors as rnnslim.io stores them (encodings applied, tied once)."""
    from rnnslim.io.format import encode_tensors, stored_tensors

    parts, _ = encode_tensors(model, stored_tensors(model))
    return sum(p.numel() * p.element_size() for p in parts.values())
