"""Re-create a pruned architecture from its edit history.

Every structural edit appends a JSON record to `model.history`:

    {"op": "prune_units", "keep": {group: [kept units]}, "sizes": {group: [before, after]}}
    {"op": "remove_layers", "layers": [group names], "refit": "none" | "lstsq"}
    {"op": "prune_vocab", "keep": [token ids], "size": V, "embedding": ..., "decoder": ...}

A SequenceModel needs none of this to load (its ModelSpec holds the sizes). A model the
user wrote is re-created by building a fresh instance from the user's code and replaying
the structural records on it; the weights then load from the state dict:

    save_edited(pruned, "out/")                       # weights.safetensors + history.json
    model = load_edited(MyModel(), "out/", example_inputs=(x,))

Records without a structural "op" (training notes, stage records) are copied into the
history as they are. A layer-removal re-fit is replayed for shapes only (the fitted
weights come from the state dict).
"""

from __future__ import annotations

import json
from pathlib import Path

from torch import nn

from rnnslim.prune.structured import append_history, keep_units_

STRUCTURAL_OPS = ("prune_units", "remove_layers", "prune_vocab")


def replay(model: nn.Module, history: list[dict], example_inputs: tuple | None = None,
           consumers: dict | None = None) -> nn.Module:
    """Apply the structural edits of `history` to a fresh `model` (same code, original sizes)."""
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
                           example_inputs=example_inputs, consumers=cons)
        elif op == "prune_vocab":
            prune_vocab_(model, rec["keep"], embedding=rec.get("embedding", "embedding"),
                         decoder=rec.get("decoder", "decoder"))
        else:
            append_history(model, rec)
    return model


EDITED_FORMAT, EDITED_VERSION, EDITED_MANIFEST, EDITED_WEIGHTS = "rnnslim-edited", 1, "edited.json", "weights.safetensors"


def save_edited(model: nn.Module, path: str | Path) -> Path:
    """Write a user's edited `model` to directory `path`, atomically: its weights with the
    storage they were given (sparse for pruned tensors marked by mark_sparse_, packed
    low-bit for quantized layers: real bytes), the swapped-in rnnslim modules, and the
    history (JSON, no pickle). Re-create it with load_edited(MyModel(), path)."""
    from safetensors.torch import save_file

    from rnnslim.io.format import _stored_tensors, encode_tensors
    from rnnslim.utils.hashing import file_sha256
    from rnnslim.io.modules import module_records
    from rnnslim.utils.atomic import atomic_directory

    path = Path(path)
    stored, records = encode_tensors(model, _stored_tensors(model))
    manifest = {"format": EDITED_FORMAT, "version": EDITED_VERSION, "history": getattr(model, "history", []) or [],
                "modules": module_records(model), "tensors": records, "weights_file": EDITED_WEIGHTS}
    with atomic_directory(path, EDITED_MANIFEST) as tmp:
        save_file(stored, str(tmp / EDITED_WEIGHTS), metadata={"format": EDITED_FORMAT})
        manifest["weights_sha256"] = file_sha256(tmp / EDITED_WEIGHTS)
        (tmp / EDITED_MANIFEST).write_text(json.dumps(manifest, indent=1))
    return path


def load_edited(model: nn.Module, path: str | Path, example_inputs: tuple | None = None,
                consumers: dict | None = None) -> nn.Module:
    """Replay the saved structural history on a fresh `model` (the user's code, original
    sizes), swap in the saved rnnslim modules (quantized layers), then load the weights
    (strict, shapes checked). Directories from before the manifest (history.json +
    weights.safetensors, dense) load too."""
    from safetensors.torch import load_model

    from rnnslim.io.errors import ModelFormatError
    from rnnslim.io.format import _load_tensors, decode_tensors, encodings_of
    from rnnslim.utils.hashing import file_sha256
    from rnnslim.io.modules import rebuild_modules

    path = Path(path)
    if not (path / EDITED_MANIFEST).exists() and (path / "history.json").exists():  # the earlier layout
        replay(model, json.loads((path / "history.json").read_text())["history"], example_inputs, consumers)
        load_model(model, str(path / EDITED_WEIGHTS), strict=True)
        return model
    if not (path / EDITED_MANIFEST).exists():
        raise ModelFormatError(f"{path} is not a directory save_edited wrote (no {EDITED_MANIFEST})")
    meta = json.loads((path / EDITED_MANIFEST).read_text())
    if meta.get("format") != EDITED_FORMAT or meta.get("version") != EDITED_VERSION:
        raise ModelFormatError(f"{path / EDITED_MANIFEST}: format {meta.get('format')!r} version "
                               f"{meta.get('version')!r} is not one this rnnslim reads")
    weights = path / meta.get("weights_file", EDITED_WEIGHTS)
    if not isinstance(meta.get("weights_sha256"), str):
        raise ModelFormatError(f"{path / EDITED_MANIFEST}: weights_sha256 is missing (the integrity check cannot be "
                               "switched off)")
    if Path(meta.get("weights_file", EDITED_WEIGHTS)).name != meta.get("weights_file", EDITED_WEIGHTS) \
            or not weights.is_file():
        raise ModelFormatError(f"{path / EDITED_MANIFEST}: weights_file must name a regular file in {path}")
    if file_sha256(weights) != meta["weights_sha256"]:
        raise ModelFormatError(f"{weights}: checksum mismatch: corrupt, or not the weights of {path}")
    replay(model, meta["history"], example_inputs, consumers)
    rebuild_modules(model, [r for r in meta.get("modules", []) if not _already_built(model, r)])
    tensors = decode_tensors(_load_tensors(weights), meta["tensors"], weights)
    expected = model.state_dict()
    bad = [n for n, t in tensors.items() if n in expected and tuple(t.shape) != tuple(expected[n].shape)]
    missing = [n for n in expected if n not in tensors and not _aliased(model, n, tensors)]
    unexpected = [n for n in tensors if n not in expected]
    if bad or missing or unexpected:
        raise ModelFormatError(f"{path}: the saved weights do not fit this model after replaying its history "
                               f"(shape mismatch {bad[:5]}, missing {missing[:5]}, unexpected {unexpected[:5]}); "
                               "build it with the same code and arguments as the model that was saved")
    model.load_state_dict(tensors, strict=False)
    model.tensor_encodings = encodings_of(meta["tensors"])
    return model


def _already_built(model: nn.Module, record: dict) -> bool:
    """The replayed structure already holds this module (a per-layer stack a cut made)."""
    try:
        mod = model.get_submodule(record["path"])
    except AttributeError:
        return False
    return getattr(type(mod), "rnnslim_kind", None) == record["kind"] and mod.rnnslim_config() == record["config"]


def _aliased(model: nn.Module, name: str, tensors: dict) -> bool:
    """A tied tensor saved once under its first name (e.g. decoder.weight = encoder.weight)."""
    sd = model.state_dict(keep_vars=True)
    t = sd[name]
    return any(other in tensors and sd[other] is t for other in sd if other != name)
