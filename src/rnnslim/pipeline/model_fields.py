"""Recipe fields that name parts of the model (layer indices, per-layer sizes), checked against
the model before any stage runs, so `prune_units: {layers: [2]}` on a 2-layer model is a
clear recipe error at the start instead of a KeyError after the input was measured.

A stage config's `check_against(model)` (rnnslim.pipeline.stage.StageConfig) uses these
helpers and raises ValueError("field 'layers': ..."); the runner adds the stage's number and
kind. Layer keys are ints, digit strings (JSON object keys) or names: "rnn.layers.K" is
checked here, other names (torch module paths, "lstm[1]") are left to the stage itself.
"""

from __future__ import annotations

import re

_STACK_NAME = re.compile(r"^rnn\.layers\.(\d+)$")


def layer_count(model) -> int | None:
    """Recurrent layers of a SequenceModel (from its spec); None for a model without one."""
    layers = getattr(getattr(model, "spec", None), "layers", None)
    return len(layers) if isinstance(layers, (list, tuple)) else None


def _index(key) -> int | None:
    if isinstance(key, bool):
        return None
    if isinstance(key, int):
        return key
    if isinstance(key, str):
        name = _STACK_NAME.match(key)
        if name:
            return int(name.group(1))
        if key.lstrip("-").isdigit():
            return int(key)
    return None


def valid_range(n: int, from_end: bool) -> str:
    """The layer indices a field may hold, in words."""
    text = f"the model has {n} recurrent layer{'s' if n != 1 else ''} (0..{n - 1}"
    return text + (f", or -{n}..-1 counting from the last)" if from_end else ")")


def check_layer_keys(field: str, keys, model, from_end: bool = False) -> None:
    """Every index in `keys` names a recurrent layer of `model`; `from_end`: negative indices
    count from the last layer (fields resolved like prune_units' layer keys)."""
    n = layer_count(model)
    if n is None or keys is None:
        return
    low = -n if from_end else 0
    for key in keys:
        k = _index(key)
        if k is not None and not low <= k < n:
            raise ValueError(f"field {field!r}: layer {key!r} does not exist; {valid_range(n, from_end)}")


def check_per_layer_sizes(field: str, sizes, layers, model) -> None:
    """`sizes` (one per chosen layer, or one for all) each below that layer's hidden size."""
    n = layer_count(model)
    if n is None or sizes is None:
        return
    chosen = list(range(n)) if layers is None else sorted(set(layers))
    per_layer = list(sizes) if isinstance(sizes, (list, tuple)) else [sizes] * len(chosen)
    if len(per_layer) != len(chosen):
        raise ValueError(f"field {field!r}: {len(per_layer)} sizes for {len(chosen)} layers {chosen}")
    for k, p in zip(chosen, per_layer):
        hidden = model.spec.layers[k].hidden_size
        if p >= hidden:
            raise ValueError(f"field {field!r}: {p} for layer {k} must be below its hidden size {hidden}")


def check_count(field: str, values, model) -> None:
    """`values` holds one entry per recurrent layer."""
    n = layer_count(model)
    if n is not None and values is not None and len(values) != n:
        raise ValueError(f"field {field!r}: {len(values)} values, one per recurrent layer needed "
                         f"(the model has {n})")
