"""The edited directory: a user's own nn.Module after rnnslim changed it (format: rnnslim.io).

    save_edited(pruned, "out/")                            # edited.json + weights.safetensors
    restore_edited(MyModel(), "out/", replay)              # what rnnslim.load_edited calls

A user's class cannot be rebuilt from a description, so loading starts from a fresh
instance of it (the user's code, original sizes) and re-applies the structural records of
the history with `replay(model, history)`, then swaps in the saved rnnslim modules
(quantized layers) and loads the weights, shapes checked. The replay needs the pruning
operations (rnnslim.prune.structured.history.replay), which sit above io: the caller passes
it, and rnnslim.load_edited is that call with the pruning replay bound.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from torch import nn

from rnnslim.io.errors import ModelFormatError
from rnnslim.io.format import (
    EDITED_FORMAT,
    EDITED_MANIFEST,
    EDITED_VERSION,
    EDITED_WEIGHTS,
    check_weights_sha,
    decode_tensors,
    encode_tensors,
    encodings_of,
    load_tensors,
    read_manifest,
    stored_tensors,
)
from rnnslim.io.modules import module_records, rebuild_modules
from rnnslim.utils.atomic import atomic_directory
from rnnslim.utils.hashing import file_sha256

LEGACY_HISTORY = "history.json"  # the layout before the manifest: history.json + dense weights.safetensors

Replay = Callable[[nn.Module, list], object]  # replay(model, history): the structural records, applied in place


def save_edited(model: nn.Module, path: str | Path) -> Path:
    """Write a user's edited `model` to directory `path`, atomically: its weights with the
    storage they were given (sparse for pruned tensors marked by mark_sparse_, packed
    low-bit for quantized layers: real bytes), the swapped-in rnnslim modules, and the
    history (JSON, no pickle). Re-create it with rnnslim.load_edited(MyModel(), path)."""
    from safetensors.torch import save_file

    path = Path(path)
    stored, records = encode_tensors(model, stored_tensors(model))
    manifest = {"format": EDITED_FORMAT, "version": EDITED_VERSION,
                "model_class": f"{type(model).__module__}.{type(model).__qualname__}",  # named when a command refuses it
                "history": getattr(model, "history", []) or [],
                "modules": module_records(model), "tensors": records, "weights_file": EDITED_WEIGHTS}
    with atomic_directory(path, EDITED_MANIFEST) as tmp:
        save_file(stored, str(tmp / EDITED_WEIGHTS), metadata={"format": EDITED_FORMAT})
        manifest["weights_sha256"] = file_sha256(tmp / EDITED_WEIGHTS)
        (tmp / EDITED_MANIFEST).write_text(json.dumps(manifest, indent=1))
    return path


def restore_edited(model: nn.Module, path: str | Path, replay: Replay) -> nn.Module:
    """Re-create what save_edited wrote on a fresh `model`: `replay(model, history)`, then the
    saved rnnslim modules, then the weights (strict, shapes checked). Directories from before
    the manifest (history.json + weights.safetensors, dense) load too."""
    path = Path(path)
    manifest = path / EDITED_MANIFEST
    if not manifest.exists() and (path / LEGACY_HISTORY).exists():
        from safetensors.torch import load_model

        replay(model, json.loads((path / LEGACY_HISTORY).read_text())["history"])
        load_model(model, str(path / EDITED_WEIGHTS), strict=True)
        return model
    if not manifest.exists():
        raise ModelFormatError(f"{path} is not a directory save_edited wrote (no {EDITED_MANIFEST})")
    meta = read_manifest(manifest)
    if meta.get("format") != EDITED_FORMAT or meta.get("version") != EDITED_VERSION:
        raise ModelFormatError(f"{manifest}: format {meta.get('format')!r} version "
                               f"{meta.get('version')!r} is not one this rnnslim reads")
    weights = _weights_beside(manifest, meta)
    check_weights_sha(manifest, weights, meta.get("weights_sha256"), required=True)
    replay(model, meta["history"])
    rebuild_modules(model, [r for r in meta.get("modules", []) if not _already_built(model, r)])
    tensors = decode_tensors(load_tensors(weights), meta["tensors"], weights)
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


def _weights_beside(manifest: Path, meta: dict) -> Path:
    """The weights file the manifest names: a regular file in the same directory."""
    name = meta.get("weights_file", EDITED_WEIGHTS)
    if not isinstance(name, str) or not name or Path(name).name != name or not (manifest.parent / name).is_file():
        raise ModelFormatError(f"{manifest}: weights_file must name a regular file in {manifest.parent}")
    return manifest.parent / name


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
