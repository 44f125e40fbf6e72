"""Save and load SequenceModels: the model directory (the formats: rnnslim.io's docstring).

The reference models in ../shared/models (NAME.json + NAME.safetensors) load as they are.
A reference JSON may carry an optional "weights_sha256" (hex SHA-256 of NAME.safetensors),
which is checked when present; reference files without it are NOT integrity-checked.
Writes are atomic: a temporary directory is renamed into place.

Loading is hardened against malformed or hostile files: every problem ends in a
ModelFormatError naming the file and field. The JSON must be a regular file of at most
MAX_MANIFEST_BYTES; the weights file must be a plain file name beside it (no directories,
no ".."), a regular file (no FIFO / device); every declared tensor shape is checked
against the architecture (built on the "meta" device, so nothing is allocated) and
against the safetensors header before anything is decoded or allocated; weights must be
finite and floating-point where the architecture expects floats, in float32, float16 or
bfloat16 (FLOAT_DTYPES; a float64 tensor is refused at save and load, never converted).
Nothing is changed silently: spec.tie_weights must agree with the stored tensors (a tied
model stores no decoder.weight, an untied one does), and a language model's vocabulary
must follow its task's rules (rnnslim.tasks.vocab: single characters for charlm).
"""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from rnnslim.io.encodings import get_encoding, part_key
from rnnslim.io.errors import ModelFormatError
from rnnslim.io.modules import module_records, rebuild_modules
from rnnslim.io.tied import is_tied_quantized_alias, retie_after_load_  # a quantized tied decoder: its codes, once
from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, SequenceModel
from rnnslim.tasks import DEFAULT_TASK
from rnnslim.tasks.vocab import vocab_problem
from rnnslim.utils.atomic import atomic_directory
from rnnslim.utils.hashing import file_sha256

FORMAT = "rnnslim-model"
VERSION = 1
MANIFEST = "model.json"
WEIGHTS = "model.safetensors"
# the other format (rnnslim.io's docstring): a save_edited directory (rnnslim.io.edited) holds a
# user's own class, which load_model cannot rebuild; its names live here, beside the model's
EDITED_FORMAT, EDITED_VERSION, EDITED_MANIFEST, EDITED_WEIGHTS = "rnnslim-edited", 1, "edited.json", "weights.safetensors"
MAX_MANIFEST_BYTES = 64 << 20  # a model JSON larger than this is refused before reading
MAX_LAYERS = 4096  # recurrent layers a description may declare
MAX_ELEMENTS = 1 << 32  # logical tensor elements a model may declare (16 GiB of float32)
# floating-point weights are stored in these dtypes (fp16 / bf16 from the `cast` stage); a float64
# tensor would load and then fail inside the first matmul, so it is refused at save and load
FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
_INT_FIELDS = ("input_size", "embed_size", "output_size", "hidden_size", "proj_size", "input_rank", "decoder_rank")


def stored_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """state_dict without duplicate (tied) entries, on the CPU; first name wins."""
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
        try:
            enc = get_encoding(rec["encoding"])
        except ModelFormatError as e:
            raise ModelFormatError(f"{where}: tensor {name}: {e}") from None
        try:
            parts = {s: raw[part_key(name, s)] for s in rec.get("parts", [""])}
        except KeyError as e:
            raise ModelFormatError(f"{where}: stored part {e} of tensor {name} is missing") from None
        try:
            tensors[name] = enc.decode(parts, rec)
        except ModelFormatError as e:
            raise ModelFormatError(f"{where}: tensor {name}: {e}") from None
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as e:
            raise ModelFormatError(f"{where}: tensor {name} ({rec['encoding']}) cannot be decoded: "
                                   f"{type(e).__name__}: {_one_line(e)}") from None
        if "shape" in rec and list(tensors[name].shape) != list(rec["shape"]):
            raise ModelFormatError(f"{where}: tensor {name} decodes to shape {list(tensors[name].shape)}, "
                                   f"its record says {rec['shape']}")
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
    tensors = stored_tensors(model)
    _check_shared(model, tensors, f"save_model({path})")
    for name, t in tensors.items():
        _check_finite(name, t, f"save_model({path})")
        _check_float_dtype(name, t, f"save_model({path})")
    stored, records = encode_tensors(model, tensors)
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "spec": model.spec.model_dump(mode="json"),
        "task": getattr(model, "task_meta", {}) or {},
        "tensors": records,
        "modules": module_records(model),
        "history": getattr(model, "history", []) or [],
        **_capture_field(model),
        "weights_file": WEIGHTS,
        **(extra or {}),
    }
    with atomic_directory(path, MANIFEST, ModelFormatError) as tmp:
        save_file(stored, str(tmp / WEIGHTS), metadata={"format": FORMAT, "version": str(VERSION)})
        manifest["weights_sha256"] = file_sha256(tmp / WEIGHTS)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return path


def _capture_field(model) -> dict:
    """{"capture": record} for a captured model (rnnslim.capture), else nothing."""
    info = getattr(model, "capture_info", None)
    if info is None:
        return {}
    return {"capture": info.model_dump(mode="json") if hasattr(info, "model_dump") else dict(info)}


def _load_capture(jpath: Path, meta: dict):
    from rnnslim.models.capture_info import CaptureInfo

    try:
        return CaptureInfo.model_validate(meta["capture"])
    except Exception as e:  # pydantic.ValidationError
        raise ModelFormatError(f"{jpath}: invalid field capture: {_one_line(e)}") from None


def _regular_file(p: Path, what: str, max_bytes: int | None = None) -> os.stat_result:
    """os.stat `p` (following links) and insist on a regular file, optionally size-capped."""
    try:
        st = os.stat(p)
    except OSError as e:
        raise ModelFormatError(f"{p}: {what} cannot be read ({e.strerror or e})") from None
    if not stat.S_ISREG(st.st_mode):
        raise ModelFormatError(f"{p}: {what} is not a regular file")
    if max_bytes is not None and st.st_size > max_bytes:
        raise ModelFormatError(f"{p}: {what} is {st.st_size} bytes, more than the {max_bytes} allowed")
    return st


def _one_line(e: BaseException, limit: int = 300) -> str:
    """An exception as one short line (pydantic's multi-line reports become `loc: msg; ...`)."""
    errors = getattr(e, "errors", None)
    if callable(errors):
        try:
            text = "; ".join(f"{'.'.join(map(str, x['loc'])) or 'value'}: {x['msg']}" for x in errors()[:3])
        except Exception:  # not a pydantic error after all
            text = str(e)
    else:
        text = str(e)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _reject_constant(name: str):
    raise ValueError(f"{name} is not allowed in a model description")


def read_manifest(p: Path) -> dict:
    """The JSON object in manifest `p` (model.json, NAME.json, edited.json), read defensively:
    a regular file of at most MAX_MANIFEST_BYTES, strict JSON, an object at the top level."""
    _regular_file(p, "model JSON", MAX_MANIFEST_BYTES)
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise ModelFormatError(f"{p}: model JSON is not a regular file")
            data = f.read(MAX_MANIFEST_BYTES + 1)
    except OSError as e:
        raise ModelFormatError(f"{p}: model JSON cannot be read ({e.strerror or e})") from None
    if len(data) > MAX_MANIFEST_BYTES:
        raise ModelFormatError(f"{p}: model JSON is more than {MAX_MANIFEST_BYTES} bytes")
    try:
        meta = json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise ModelFormatError(f"{p}: not valid JSON ({_one_line(e, 200)})") from None
    if not isinstance(meta, dict):
        raise ModelFormatError(f"{p}: top level is a JSON {type(meta).__name__}, expected an object")
    return meta


def _weights_name(p: Path, meta: dict) -> str:
    name = meta.get("weights_file", WEIGHTS)
    if (not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "\\" in name
            or "\0" in name or os.sep in name or (os.altsep and os.altsep in name)):
        raise ModelFormatError(f"{p}: field weights_file must be a plain file name beside the JSON, got {name!r}")
    return name


def _resolve(path: str | os.PathLike) -> tuple[Path, Path, dict]:
    p = Path(path)
    if p.is_dir() and not (p / MANIFEST).exists() and (p / EDITED_MANIFEST).is_file():
        raise edited_copy_error(p, p / EDITED_MANIFEST)
    if p.is_dir():
        # a model directory, or a run directory (train / compress output) holding model/
        p = p / MANIFEST if (p / MANIFEST).exists() or not (p / "model" / MANIFEST).exists() else p / "model" / MANIFEST
    if not p.exists():
        raise ModelFormatError(f"model not found: {path} (give a model directory or its JSON file)")
    if p.suffix != ".json":
        raise ModelFormatError(f"{path}: expected a .json model description or a model directory")
    meta = read_manifest(p)
    if meta.get("format") == EDITED_FORMAT:
        raise edited_copy_error(p.parent, p)
    weights = p.parent / _weights_name(p, meta) if meta.get("format") == FORMAT else p.with_suffix(".safetensors")
    if not weights.exists():
        raise ModelFormatError(f"{p}: weights file {weights.name} is missing beside it")
    _regular_file(weights, "weights file")
    return p, weights, meta


def edited_copy_error(directory: Path, manifest: Path) -> ModelFormatError:
    """What load_model (and every command that loads a model) says about a save_edited directory:
    it holds the user's own class, so it is rebuilt in Python and captured to become a model."""
    try:
        cls = str(read_manifest(manifest).get("model_class") or "").rpartition(".")[2]
    except ModelFormatError:
        cls = ""
    name = cls if cls.isidentifier() else "MyModel"
    what = f"your own class {cls}" if cls.isidentifier() else "your own model class"
    return ModelFormatError(
        f"{directory} is an edited copy of {what} (save_edited), not an rnnslim model: only your code can rebuild "
        f"it. To export it, rebuild it in Python and capture it: from rnnslim.capture import capture; "
        f"m = rnnslim.load_edited({name}(...), '{directory}'); seq = capture(m, example_inputs); "
        "rnnslim.save_model(seq, OUT); then: rnnslim export OUT")


def resolve_model_path(path: str | os.PathLike) -> tuple[Path, Path]:
    """(json_path, weights_path) for a model directory, its model.json, or a NAME.json."""
    p, weights, _ = _resolve(path)
    return p, weights


def artifact_bytes(path: str | os.PathLike) -> int:
    """Bytes on disk of everything needed to run the model: manifest + weights."""
    j, w = resolve_model_path(path)
    return j.stat().st_size + w.stat().st_size


def load_tensors(weights: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors file; a damaged file is a ModelFormatError naming it."""
    try:
        return load_file(str(weights))
    except (SafetensorError, OSError, ValueError, RuntimeError, TypeError) as e:
        raise ModelFormatError(f"{weights}: corrupt or unreadable safetensors file ({_one_line(e)})") from None


def _header(weights: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """{name: (shape, dtype)} of a safetensors file, from its header only (nothing loaded)."""
    try:
        with safe_open(str(weights), framework="pt") as f:
            return {k: (tuple(f.get_slice(k).get_shape()), str(f.get_slice(k).get_dtype())) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError, TypeError) as e:
        raise ModelFormatError(f"{weights}: corrupt or unreadable safetensors file ({_one_line(e)})") from None


def _check_finite(name: str, t: torch.Tensor, where) -> None:
    if (t.dtype.is_floating_point or t.dtype.is_complex) and t.numel() and not bool(torch.isfinite(t).all()):
        raise ModelFormatError(f"{where}: tensor {name} holds NaN or infinite values")


def _check_float_dtype(name: str, t: torch.Tensor, where, expected: torch.dtype | None = None) -> None:
    """Floating-point weights must be float32 / float16 / bfloat16 (or the architecture's own dtype)."""
    if (t.dtype.is_floating_point or t.dtype.is_complex) and t.dtype not in FLOAT_DTYPES and t.dtype != expected:
        raise ModelFormatError(f"{where}: tensor {name} is {str(t.dtype).removeprefix('torch.')}; rnnslim models "
                               "hold float32, float16 or bfloat16 weights (convert with .float() before saving)")


def _check_shared(model: torch.nn.Module, tensors: dict[str, torch.Tensor], where) -> None:
    """A tensor left out as a duplicate must be one the loader re-ties (spec.tie_weights), or
    the saved model could not be loaded."""
    dropped = [k for k, t in model.state_dict().items() if k not in tensors]
    untied = [k for k in dropped if not _is_tied_alias(model, k, tensors)]
    if untied:
        raise ModelFormatError(f"{where}: tensor {untied[0]} shares its storage with another tensor, which the "
                               "model description cannot express (only the decoder can be tied to the embedding, "
                               "with spec.tie_weights); clone it or build the model with tie_weights=True")


def check_weights_sha(jpath: Path, weights: Path, want, required: bool) -> None:
    """The weights' SHA-256 must equal `want` (the manifest's weights_sha256); None passes
    only when not `required` (reference models)."""
    if want is None and not required:
        return
    if want is None:
        raise ModelFormatError(f"{jpath}: field weights_sha256 is missing (the weights cannot be integrity-checked)")
    if not isinstance(want, str) or len(want) != 64 or any(c not in "0123456789abcdef" for c in want.lower()):
        raise ModelFormatError(f"{jpath}: field weights_sha256 must be 64 hex digits, got {str(want)[:80]!r}")
    if file_sha256(weights) != want.lower():
        raise ModelFormatError(f"{weights}: checksum mismatch: the weights file is corrupt or does not belong to {jpath.name}")


def load_model(path: str | os.PathLike, map_location: str = "cpu") -> SequenceModel:
    """Load a model written by save_model, or a reference model (NAME.json + NAME.safetensors)."""
    jpath, weights, meta = _resolve(path)
    if meta.get("format") == FORMAT:
        model = _load_native(jpath, weights, meta)
    elif "cell" in meta and "hidden_size" in meta:
        model = _load_reference(jpath, weights, meta)
    else:
        raise ModelFormatError(f"{jpath}: neither an rnnslim model manifest nor a reference model description")
    model.source_path = str(jpath)
    return model.to(map_location).eval()


def _check_and_load(model: torch.nn.Module, tensors: dict[str, torch.Tensor], where: Path) -> None:
    from rnnslim.io.derived import check_derived, split_derived

    tensors, derived = split_derived(model, tensors)  # an older file's copies of derived buffers
    expected = model.state_dict()
    missing = [k for k in expected if k not in tensors and not _is_tied_alias(model, k, tensors)]
    aliases = [k for k in expected if k not in tensors and k not in missing]  # re-tied below
    unexpected = [k for k in tensors if k not in expected]
    if missing or unexpected:
        raise ModelFormatError(f"{where}: weights do not match the architecture: missing {missing[:5]}, "
                               f"unexpected {unexpected[:5]}")
    if getattr(model.spec, "tie_weights", False) and "decoder.weight" in tensors and isinstance(
            getattr(model, "decoder", None), torch.nn.Linear):  # a quantized decoder may hold its own copy (older files)
        raise ModelFormatError(f"{where}: field spec.tie_weights is true, but the weights hold a decoder.weight of "
                               "their own (the model was saved untied); tying would throw away one of the two "
                               "stored matrices: set spec.tie_weights to false")
    for k, t in tensors.items():
        if tuple(t.shape) != tuple(expected[k].shape):
            raise ModelFormatError(f"{where}: tensor {k} has shape {tuple(t.shape)}, the description says "
                                   f"{tuple(expected[k].shape)}")
        want = expected[k].dtype
        if (want.is_floating_point or want.is_complex) and not (t.dtype.is_floating_point or t.dtype.is_complex):
            raise ModelFormatError(f"{where}: tensor {k} is stored as {str(t.dtype).removeprefix('torch.')}, "
                                   f"the architecture expects a floating-point dtype")
        if want.is_floating_point or want.is_complex:
            _check_float_dtype(k, t, where, expected=want)
        _check_finite(k, t, where)
    model.load_state_dict(tensors, strict=False)
    # keep dtypes as stored (fp16/bf16 models stay half precision)
    with torch.no_grad():
        for name, p in list(model.named_parameters()) + list(model.named_buffers()):
            if name in tensors and p.dtype != tensors[name].dtype:
                p.data = tensors[name].to(p.device).clone()
    try:  # a tied quantized decoder's buffers were stored once, under the embedding's names
        retie_after_load_(model, aliases)
        check_derived(model, derived)
    except ValueError as e:
        raise ModelFormatError(f"{where}: {e}") from None


def _is_tied_alias(model: torch.nn.Module, key: str, tensors: dict) -> bool:
    tied_float = key == "decoder.weight" and getattr(model.spec, "tie_weights", False) and "embedding.weight" in tensors
    return tied_float or is_tied_quantized_alias(model, key, tensors)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_spec_types(jpath: Path, spec) -> None:
    """Integer fields must be JSON integers (pydantic would take 256.0 or "256")."""
    if not isinstance(spec, dict):
        raise ModelFormatError(f"{jpath}: field spec must be an object, got {type(spec).__name__}")
    layers = spec.get("layers")
    if not isinstance(layers, list):
        raise ModelFormatError(f"{jpath}: field spec.layers must be a list, got {type(layers).__name__}")
    if len(layers) > MAX_LAYERS:
        raise ModelFormatError(f"{jpath}: field spec.layers declares {len(layers)} layers, more than {MAX_LAYERS}")
    for where, d in [("spec", spec)] + [(f"spec.layers[{i}]", ly) for i, ly in enumerate(layers)]:
        if not isinstance(d, dict):
            raise ModelFormatError(f"{jpath}: field {where} must be an object, got {type(d).__name__}")
        for k in _INT_FIELDS:
            if k in d and not _is_int(d[k]):
                raise ModelFormatError(f"{jpath}: field {where}.{k} must be an integer, got {d[k]!r}"[:300])


def _skeleton(jpath: Path, spec: ModelSpec, modules) -> SequenceModel:
    """The architecture on the meta device: every tensor's shape and dtype, nothing allocated."""
    try:
        with torch.device("meta"):
            model = SequenceModel(spec)
            rebuild_modules(model, modules)
    except ModelFormatError as e:
        raise ModelFormatError(f"{jpath}: {e}") from None
    except Exception as e:  # a malformed module record or spec the constructors refuse
        raise ModelFormatError(f"{jpath}: the architecture (fields spec, modules) cannot be built: {type(e).__name__}: {_one_line(e)}") from None
    return model


def _expected_shapes(jpath: Path, skel: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    from rnnslim.io.derived import derived_tensors  # older files also hold these (io/derived.py)

    shapes = {k: tuple(v.shape) for k, v in skel.state_dict().items()}
    shapes.update({k: tuple(v.shape) for k, v in derived_tensors(skel).items()})
    total = sum(math.prod(s) for s in shapes.values())
    if total > MAX_ELEMENTS:
        raise ModelFormatError(f"{jpath}: the architecture declares {total} weights, more than {MAX_ELEMENTS}")
    return shapes


_PART_SUFFIX = {"dense": {""}, "lzma": {""}}


def _check_records(jpath: Path, weights: Path, records, skel: torch.nn.Module) -> None:
    """Declared tensor records against the architecture and the safetensors header, before decoding."""
    if not isinstance(records, dict):
        raise ModelFormatError(f"{jpath}: field tensors must be an object, got {type(records).__name__}")
    expected = _expected_shapes(jpath, skel)
    header = _header(weights)
    for name, rec in records.items():
        f = f"tensors.{name}"
        if not isinstance(rec, dict):
            raise ModelFormatError(f"{jpath}: field {f} must be an object, got {type(rec).__name__}")
        if not isinstance(rec.get("encoding"), str):
            raise ModelFormatError(f"{jpath}: field {f}.encoding must be a string, got {rec.get('encoding')!r}"[:300])
        shape = rec.get("shape")
        if not isinstance(shape, list) or not all(_is_int(s) and s >= 0 for s in shape):
            raise ModelFormatError(f"{jpath}: field {f}.shape must be a list of non-negative integers, got {shape!r}"[:300])
        if "dtype" in rec and not isinstance(rec["dtype"], str):
            raise ModelFormatError(f"{jpath}: field {f}.dtype must be a string, got {rec['dtype']!r}"[:300])
        parts = rec.get("parts", [""])
        if not isinstance(parts, list) or not all(isinstance(p, str) for p in parts) or len(set(parts)) != len(parts):
            raise ModelFormatError(f"{jpath}: field {f}.parts must be a list of distinct strings, got {parts!r}"[:300])
        if name not in expected:
            raise ModelFormatError(f"{jpath}: field {f}: the architecture has no tensor {name}")
        if tuple(shape) != expected[name]:
            raise ModelFormatError(f"{jpath}: field {f}.shape is {shape}, the architecture says {list(expected[name])}")
        for p in parts:
            if part_key(name, p) not in header:
                raise ModelFormatError(f"{weights}: stored part {part_key(name, p)!r} of tensor {name} is missing")
        if rec["encoding"] == "dense" or (rec["encoding"] == "sparse_auto" and rec.get("format") == "dense"):
            got = header.get(name, (None,))[0]
            if got != tuple(shape):
                raise ModelFormatError(f"{weights}: tensor {name} has shape {list(got or [])} in the weights file, "
                                       f"field {f}.shape says {shape}")
    from rnnslim.io.derived import derived_tensors  # computed at load, never required in a file

    derived = derived_tensors(skel).keys()
    missing = [k for k in expected if k not in records and k not in derived and not _is_tied_alias(skel, k, records)]
    if missing == ["decoder.weight"] and "embedding.weight" in records and not skel.spec.tie_weights:
        raise ModelFormatError(f"{jpath}: field spec.tie_weights is false, but field tensors has no decoder.weight "
                               "(a model saved with a tied decoder?); set spec.tie_weights to true if the decoder "
                               "shares the embedding")
    if missing:
        raise ModelFormatError(f"{jpath}: field tensors lacks {missing[:5]} that the architecture needs")


def _load_native(jpath: Path, weights: Path, meta: dict) -> SequenceModel:
    if meta.get("version") != VERSION:
        raise ModelFormatError(f"{jpath}: manifest version {str(meta.get('version'))[:40]} is not supported "
                               f"(this rnnslim reads {VERSION})")
    check_weights_sha(jpath, weights, meta.get("weights_sha256"), required=True)
    _check_spec_types(jpath, meta.get("spec"))
    try:
        spec = ModelSpec.model_validate(meta["spec"])
    except Exception as e:  # pydantic.ValidationError or KeyError
        raise ModelFormatError(f"{jpath}: invalid architecture description (field spec): {_one_line(e)}") from None
    records, modules = meta.get("tensors", {}), meta.get("modules", [])
    if not isinstance(records, dict):
        raise ModelFormatError(f"{jpath}: field tensors must be an object, got {type(records).__name__}")
    if len(spec.layers) > max(len(records), 1):
        raise ModelFormatError(f"{jpath}: field spec.layers declares {len(spec.layers)} layers but only "
                               f"{len(records)} tensors are stored")
    if not isinstance(modules, list) or not all(
            isinstance(r, dict) and isinstance(r.get("path"), str) and isinstance(r.get("kind"), str)
            and isinstance(r.get("config"), dict) for r in modules):
        raise ModelFormatError(f"{jpath}: field modules must be a list of {{path, kind, config}} objects")
    if len(modules) > max(len(records), 1):
        raise ModelFormatError(f"{jpath}: field modules lists {len(modules)} modules for {len(records)} tensors")
    for k in ("task",):
        if not isinstance(meta.get(k, {}), dict):
            raise ModelFormatError(f"{jpath}: field {k} must be an object, got {type(meta[k]).__name__}")
    if not isinstance(meta.get("history", []), list):
        raise ModelFormatError(f"{jpath}: field history must be a list, got {type(meta['history']).__name__}")
    task = meta.get("task", {})
    _check_vocab(jpath, task.get("vocab"), "task.vocab", task.get("task", DEFAULT_TASK), required=False)
    skel = _skeleton(jpath, spec, modules)
    _check_records(jpath, weights, records, skel)
    tensors = decode_tensors(load_tensors(weights), records, weights)
    model = SequenceModel(spec)
    rebuild_modules(model, modules)
    _check_and_load(model, tensors, weights)
    model.task_meta = meta.get("task", {})
    model.history = meta.get("history", [])
    model.tensor_encodings = encodings_of(records)
    if "capture" in meta:
        model.capture_info = _load_capture(jpath, meta)
    return model


def _check_vocab(jpath: Path, vocab, field: str, task: str | None, required: bool) -> None:
    """The vocabulary rules of rnnslim.tasks.vocab for the model's task (e.g. single characters for charlm)."""
    if vocab is None and not required:
        return
    problem = vocab_problem(task, vocab)
    if problem:
        raise ModelFormatError(f"{jpath}: field {field} {problem}"[:300])


def _load_reference(jpath: Path, weights: Path, meta: dict) -> SequenceModel:
    """Reference layout: embedding.weight, rnn.weight_ih_l{k}..., decoder.{weight,bias}."""
    check_weights_sha(jpath, weights, meta.get("weights_sha256"), required=False)
    _check_vocab(jpath, meta.get("vocab"), "vocab", "charlm", required=True)  # reference models are char LMs
    for k in ("hidden_size", "num_layers"):
        if not _is_int(meta.get(k)) or meta[k] < 1:
            raise ModelFormatError(f"{jpath}: field {k} must be a positive integer, got {meta.get(k)!r}"[:300])
    if not isinstance(meta.get("cell"), str):
        raise ModelFormatError(f"{jpath}: field cell must be a string, got {meta.get('cell')!r}"[:300])
    dropout = meta.get("dropout", 0.0)
    if not isinstance(dropout, (int, float)) or isinstance(dropout, bool):
        raise ModelFormatError(f"{jpath}: field dropout must be a number, got {dropout!r}"[:300])
    header = _header(weights)
    V, H, L = len(meta["vocab"]), meta["hidden_size"], meta["num_layers"]
    if L > min(MAX_LAYERS, max(len(header), 1)):
        raise ModelFormatError(f"{jpath}: field num_layers is {L}, but {weights.name} holds {len(header)} tensors")
    try:
        spec = ModelSpec(cell=meta["cell"], input_kind=InputKind.EMBEDDING, input_size=V, embed_size=H,
                         layers=[LayerShape(hidden_size=H)] * L, output_size=V, dropout=float(dropout))
    except Exception as e:
        raise ModelFormatError(f"{jpath}: invalid reference model description: {_one_line(e)}") from None

    def rename(k: str) -> str:
        if k.startswith("rnn.") and "_l" in k:
            base, _, rest = k[4:].rpartition("_l")  # e.g. weight_ih, 0[_reverse]
            layer, _, rev = rest.partition("_")
            k = f"rnn.layers.{layer}.{base}_l0" + (f"_{rev}" if rev else "")
        return k

    expected = _expected_shapes(jpath, _skeleton(jpath, spec, []))
    for k, (shape, _) in header.items():
        if rename(k) in expected and shape != expected[rename(k)]:
            raise ModelFormatError(f"{weights}: tensor {k} has shape {list(shape)}, the description "
                                   f"(hidden_size {H}, num_layers {L}, {V} vocabulary entries) says "
                                   f"{list(expected[rename(k)])}")
    tensors = {rename(k): t for k, t in load_tensors(weights).items()}
    model = SequenceModel(spec)
    _check_and_load(model, tensors, weights)
    model.task_meta = {"task": "charlm", "vocab": list(meta["vocab"]), "name": meta.get("name", jpath.stem),
                       "reference": {k: meta[k] for k in ("val_loss_nats", "test_loss_nats", "split") if k in meta}}
    model.history = [{"source": "reference", "file": jpath.name}]
    return model
