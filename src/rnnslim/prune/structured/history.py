"""Re-create a pruned architecture from its edit history.

Every structural edit appends a JSON record to `model.history`:

    {"op": "prune_units", "keep": {group: [kept units]}, "sizes": {group: [before, after]}}
    {"op": "remove_layers", "layers": [group names], "refit": "none" | "lstsq"}
    {"op": "prune_vocab", "keep": [token ids], "size": V, "embedding": ..., "decoder": ...}

A SequenceModel needs none of this to load (its ModelSpec holds the sizes). A model the
user wrote is re-created by building a fresh instance from the user's code and replaying
the structural records on it; the weights then load from the state dict:

    save_edited(pruned, "out/")                       # rnnslim.io.edited: edited.json + weights
    model = load_edited(MyModel(), "out/", example_inputs=(x,))
    model = load_edited(MyModel(), "out/", example_inputs=lambda m: (x, m.init_hidden(4)))  # built per edit

Records without a structural "op" (training notes, stage records) are copied into the
history as they are. A layer-removal re-fit is replayed for shapes only (the fitted
weights come from the state dict).
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from rnnslim.io.edited import restore_edited, save_edited
from rnnslim.prune.structured import append_history, keep_units_
from rnnslim.prune.structured.cut import ExampleInputs, example_inputs_for

__all__ = ["STRUCTURAL_OPS", "load_edited", "replay", "save_edited"]  # save_edited: rnnslim.io.edited

STRUCTURAL_OPS = ("prune_units", "remove_layers", "prune_vocab")


def replay(model: nn.Module, history: list[dict], example_inputs: ExampleInputs | None = None,
           consumers: dict | None = None) -> nn.Module:
    """Apply the structural edits of `history` to a fresh `model` (same code, original sizes).
    A callable `example_inputs` (model -> forward arguments) is called again for every edit, so
    the inputs fit the sizes of that moment; size attributes follow the cuts as they did."""
    from rnnslim.prune.structured.layers import remove_layers_
    from rnnslim.prune.structured.vocab import prune_vocab_

    for rec in history:
        op = rec.get("op") if isinstance(rec, dict) else None
        cons = (consumers or rec.get("consumers")) if op else None
        if op == "prune_units":
            keep_units_(model, rec["keep"], example_inputs=example_inputs, consumers=cons)
        elif op == "remove_layers":
            refit = rec.get("refit", "none")
            remove_layers_(model, rec["layers"], refit=refit, calibration="shape-only" if refit != "none" else None,
                           example_inputs=example_inputs_for(model, example_inputs), consumers=cons)
        elif op == "prune_vocab":
            prune_vocab_(model, rec["keep"], embedding=rec.get("embedding", "embedding"),
                         decoder=rec.get("decoder", "decoder"))
        else:
            append_history(model, rec)
    return model


def load_edited(model: nn.Module, path: str | Path, example_inputs: ExampleInputs | None = None,
                consumers: dict | None = None) -> nn.Module:
    """Re-create a model save_edited wrote on a fresh `model` (the user's code, original
    sizes): its structural history replayed (`example_inputs` / `consumers` as for
    keep_units_), its rnnslim modules swapped in, its weights loaded (rnnslim.io.edited)."""
    return restore_edited(model, path, lambda m, history: replay(m, history, example_inputs, consumers))
