"""Save and load models: a directory with `model.json` (manifest) + `model.safetensors`.

Manifest (version 1):
    format: "rnnslim-model", version: 1
    spec: ModelSpec (architecture, per-layer sizes)
    task: task metadata (task name, vocabulary, classes, normalisation, ...)
    tensors: {name: {encoding, shape, dtype, parts, ...}} (dense, sparse, quantized, ...)
    modules: [{path, kind, config}] non-torch modules (e.g. quantized layers) to rebuild
    history: records of what produced this model (stages, structural edits)
    weights_file, weights_sha256: integrity check of the weights

The reference models in ../shared/models (NAME.json + NAME.safetensors) load as they are.
Writes are atomic: a temporary directory is renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from rnnslim.io.encodings import get_encoding, part_key
from rnnslim.io.errors import ModelFormatError
from rnnslim.io.modules import module_records, rebuild_modules
from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, SequenceModel
from rnnslim.utils.atomic import atomic_directory

FORMAT = "rnnslim-model"
VERSION = 1
MANIFEST = "model.json"
WEIGHTS = "model.safetensors"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _stored_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """state_dict without duplicate (tied) entries; first name wins."""
    seen: dict[int, str] = {}
    out = {}
    for name, t in model.state_dict(keep_vars=False).items():
        key = (t.data_ptr(), t.shape, t.dtype) if t.numel() else None
        if key is not None and key in seen:
            continue
        if key is not None:
            seen[key] = name
        out[name] = t.detach().cpu()
    return out


def encode_tensors(model: torch.nn.Module, tensors: dict[str, torch.Tensor]
                   ) -> tuple[dict[str, torch.Tensor], dict[str, dict]]:
    """Encode `tensors` with the storage model.tensor_encodings asks for (sparse, packed
    low-bit, dense): (safetensors parts, per-tensor records for the manifest)."""
    encodings: dict = getattr(model, "tensor_encodings", {}) or {}
    stored, records = {}, {}
    for name, t in tensors.items():
        opts = dict(encodings.get(name, {"encoding": "dense"}))
        enc = get_encoding(opts.pop("encoding", "dense"))
        parts, rec = enc.encode(t, opts)
        for suffix, p in parts.items():
            stored[part_key(name, suffix)] = p.contiguous()
        records[name] = {"encoding": enc.name, "shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch."),
                         "parts": sorted(parts), **rec}
    return stored, records


def decode_tensors(raw: dict[str, torch.Tensor], records: dict[str, dict], where: Path) -> dict[str, torch.Tensor]:
    """The tensors `encode_tensors` stored (`raw`: the safetensors file's contents)."""
    tensors = {}
    for name, rec in records.items():
        enc = get_encoding(rec["encoding"])
        try:
            parts = {s: raw[part_key(name, s)] for s in rec.get("parts", [""])}
        except KeyError as e:
            raise ModelFormatError(f"{where}: stored part {e} of tensor {name} is missing") from None
        tensors[name] = enc.decode(parts, rec)
    return tensors


def encodings_of(records: dict[str, dict]) -> dict[str, dict]:
    """model.tensor_encodings as it was at save time (non-dense entries)."""
    return {n: {"encoding": r["encoding"], **r.get("options", {})} for n, r in records.items()
            if r["encoding"] != "dense"}


def save_model(model: SequenceModel, path: str | os.PathLike, extra: dict | None = None) -> Path:
    """Write `model` to directory `path` atomically and return the path.

    Uses model.task_meta, model.history and model.tensor_encodings when present.
    """
    path = Path(path)
    stored, records = encode_tensors(model, _stored_tensors(model))
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "spec": model.spec.model_dump(mode="json"),
        "task": getattr(model, "task_meta", {}) or {},
        "tensors": records,
        "modules": module_records(model),
        "history": getattr(model, "history", []) or [],
        "weights_file": WEIGHTS,
        **(extra or {}),
    }
    with atomic_directory(path, MANIFEST, ModelFormatError) as tmp:
        save_file(stored, str(tmp / WEIGHTS), metadata={"format": FORMAT, "version": str(VERSION)})
        manifest["weights_sha256"] = _sha256(tmp / WEIGHTS)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return path


def resolve_model_path(path: str | os.PathLike) -> tuple[Path, Path]:
    """(json_path, weights_path) for a model directory, its model.json, or a NAME.json."""
    p = Path(path)
    if p.is_dir():
        # a model directory, or a run directory (train / compress output) holding model/
        p = p / MANIFEST if (p / MANIFEST).exists() or not (p / "model" / MANIFEST).exists() else p / "model" / MANIFEST
    if not p.exists():
        raise ModelFormatError(f"model not found: {path} (give a model directory or its JSON file)")
    if p.suffix != ".json":
        raise ModelFormatError(f"{path}: expected a .json model description or a model directory")
    try:
        meta = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelFormatError(f"{p}: not valid JSON ({e})") from None
    weights = p.parent / meta.get("weights_file", WEIGHTS) if meta.get("format") == FORMAT else p.with_suffix(".safetensors")
    if not weights.exists():
        raise ModelFormatError(f"{p}: weights file {weights.name} is missing beside it")
    return p, weights


def artifact_bytes(path: str | os.PathLike) -> int:
    """Bytes on disk of everything needed to run the model: manifest + weights."""
    j, w = resolve_model_path(path)
    return j.stat().st_size + w.stat().st_size


def _load_tensors(weights: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(weights))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ModelFormatError(f"{weights}: corrupt or unreadable safetensors file ({e})") from None


def load_model(path: str | os.PathLike, map_location: str = "cpu") -> SequenceModel:
    """Load a model written by save_model, or a reference model (NAME.json + NAME.safetensors)."""
    jpath, weights = resolve_model_path(path)
    meta = json.loads(jpath.read_text())
    if meta.get("format") == FORMAT:
        model = _load_native(jpath, weights, meta)
    elif "cell" in meta and "hidden_size" in meta:
        model = _load_reference(jpath, weights, meta)
    else:
        raise ModelFormatError(f"{jpath}: neither an rnnslim model manifest nor a reference model description")
    model.source_path = str(jpath)
    return model.to(map_location).eval()


def _check_and_load(model: torch.nn.Module, tensors: dict[str, torch.Tensor], where: Path) -> None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in tensors and not _is_tied_alias(model, k, tensors)]
    unexpected = [k for k in tensors if k not in expected]
    if missing or unexpected:
        raise ModelFormatError(f"{where}: weights do not match the architecture: missing {missing[:5]}, "
                               f"unexpected {unexpected[:5]}")
    for k, t in tensors.items():
        if tuple(t.shape) != tuple(expected[k].shape):
            raise ModelFormatError(f"{where}: tensor {k} has shape {tuple(t.shape)}, the description says "
                                   f"{tuple(expected[k].shape)}")
    model.load_state_dict(tensors, strict=False)
    # keep dtypes as stored (fp16/bf16 models stay half precision)
    with torch.no_grad():
        for name, p in list(model.named_parameters()) + list(model.named_buffers()):
            if name in tensors and p.dtype != tensors[name].dtype:
                p.data = tensors[name].to(p.device).clone()


def _is_tied_alias(model: torch.nn.Module, key: str, tensors: dict) -> bool:
    return key == "decoder.weight" and getattr(model.spec, "tie_weights", False) and "embedding.weight" in tensors


def _load_native(jpath: Path, weights: Path, meta: dict) -> SequenceModel:
    if meta.get("version") != VERSION:
        raise ModelFormatError(f"{jpath}: manifest version {meta.get('version')} is not supported (this rnnslim reads {VERSION})")
    want = meta.get("weights_sha256")
    if want and _sha256(weights) != want:
        raise ModelFormatError(f"{weights}: checksum mismatch: the weights file is corrupt or does not belong to {jpath.name}")
    try:
        spec = ModelSpec.model_validate(meta["spec"])
    except Exception as e:  # pydantic.ValidationError or KeyError
        raise ModelFormatError(f"{jpath}: invalid architecture description: {e}") from None
    tensors = decode_tensors(_load_tensors(weights), meta.get("tensors", {}), weights)
    model = SequenceModel(spec)
    rebuild_modules(model, meta.get("modules", []))
    _check_and_load(model, tensors, weights)
    model.task_meta = meta.get("task", {})
    model.history = meta.get("history", [])
    model.tensor_encodings = encodings_of(meta.get("tensors", {}))
    return model


def _load_reference(jpath: Path, weights: Path, meta: dict) -> SequenceModel:
    """Reference layout: embedding.weight, rnn.weight_ih_l{k}..., decoder.{weight,bias}."""
    try:
        V, H, L = len(meta["vocab"]), int(meta["hidden_size"]), int(meta["num_layers"])
        spec = ModelSpec(cell=meta["cell"], input_kind=InputKind.EMBEDDING, input_size=V, embed_size=H,
                         layers=[LayerShape(hidden_size=H)] * L, output_size=V, dropout=float(meta.get("dropout", 0.0)))
    except Exception as e:
        raise ModelFormatError(f"{jpath}: invalid reference model description: {e}") from None
    raw = _load_tensors(weights)
    tensors = {}
    for k, t in raw.items():
        if k.startswith("rnn.") and "_l" in k:
            base, _, rest = k[4:].rpartition("_l")  # e.g. weight_ih, 0[_reverse]
            layer, _, rev = rest.partition("_")
            k = f"rnn.layers.{layer}.{base}_l0" + (f"_{rev}" if rev else "")
        tensors[k] = t
    model = SequenceModel(spec)
    _check_and_load(model, tensors, weights)
    model.task_meta = {"task": "charlm", "vocab": list(meta["vocab"]), "name": meta.get("name", jpath.stem),
                       "reference": {k: meta[k] for k in ("val_loss_nats", "test_loss_nats", "split") if k in meta}}
    model.history = [{"source": "reference", "file": jpath.name}]
    return model
