"""Parameters that hold weights, without the empty `dtype_anchor` placeholders.

rnnslim's quantized layers (rnnslim.quantize.anchor.DtypeAnchored) each register one 0-element
parameter named `dtype_anchor` so that user code can still read a model's dtype and device
from `next(model.parameters())`. It holds no value: code that scores, counts or traces weights
(prune importance, graph tracing) must not see it. It lives here, below every technique, so
that graph/ and prune/ can recognise the placeholder without importing rnnslim.quantize.
"""

from __future__ import annotations

from collections.abc import Iterator

from torch import nn

ANCHOR = "dtype_anchor"  # the placeholder's name on every quantized layer


def is_anchor(name: str, param: nn.Parameter) -> bool:
    """True for a quantized layer's empty dtype placeholder (by its name and its 0 elements)."""
    return name.rsplit(".", 1)[-1] == ANCHOR and param.numel() == 0


def weight_parameters(module: nn.Module, recurse: bool = True) -> Iterator[tuple[str, nn.Parameter]]:
    """module.named_parameters() without the dtype anchors."""
    return ((n, p) for n, p in module.named_parameters(recurse=recurse) if not is_anchor(n, p))
