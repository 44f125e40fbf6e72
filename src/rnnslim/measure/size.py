"""Size of a model: parameters, non-zero parameters, real bytes on disk, bits per parameter.

Counts come from the *stored* tensors (the state_dict, tied tensors once): a quantized
layer that keeps int8 weights in buffers counts those integer elements as parameters.
Masks (bool tensors, names containing "mask") and quantization metadata (names containing
"scale", "zero_point", or the integer path's requantization "mult" / "shift") are
bookkeeping, not parameters; they are counted apart as `aux_elements`. Lookup tables (the
integer path's sigmoid / tanh tables, names ending in "_lut") are `table_elements`, also
not parameters. Their bytes are of course part of `artifact_bytes`.

`artifact_bytes` is what `rnnslim.io.format.artifact_bytes` reports for the saved model
directory (manifest + safetensors with the model's tensor encodings), so sparse and
low-bit storage show up as real bytes; a masked dense model is not reported smaller.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

_AUX = re.compile(r"(mask|scale|zero_point|^mult_|_mult$|^shift_|_shift$)", re.IGNORECASE)
_TABLE = re.compile(r"_lut$")


class SizeStats(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    parameters: int
    nonzero_parameters: int
    aux_elements: int  # masks, scales, zero points, requantization multipliers and shifts
    artifact_bytes: int
    artifact: str  # what was measured: a path, or how the temporary artifact was written
    bits_per_parameter: float  # artifact_bytes * 8 / parameters (everything on disk, manifest included)
    table_elements: int = 0  # lookup tables (integer sigmoid / tanh), not parameters

    @property
    def density(self) -> float:
        return self.nonzero_parameters / self.parameters if self.parameters else 0.0


def stored_tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    """state_dict without duplicate (tied) entries; the first name wins."""
    seen: set[tuple] = set()
    out = {}
    for name, t in module.state_dict().items():
        if not isinstance(t, torch.Tensor):
            continue
        key = (t.data_ptr(), tuple(t.shape), t.dtype) if t.numel() else (name,)
        if key in seen:
            continue
        seen.add(key)
        out[name] = t.detach()
    return out


def is_aux(name: str, t: torch.Tensor) -> bool:
    """Bookkeeping tensors that are not parameters (see the module docstring)."""
    return t.dtype == torch.bool or bool(_AUX.search(name.rsplit(".", 1)[-1]))


def is_table(name: str) -> bool:
    """Lookup tables (integer sigmoid / tanh): neither parameters nor aux."""
    return bool(_TABLE.search(name.rsplit(".", 1)[-1]))


def count_tables(module: nn.Module) -> int:
    return sum(t.numel() for name, t in stored_tensors(module).items() if is_table(name))


def _packed_weights(module: nn.Module) -> tuple[list[str], int, int]:
    """Prefixes of packed low-bit weight containers (QTensor) and their logical counts:
    a QTensor stores a matrix as packed codes + scales, which count as the matrix's
    weights, not as the number of stored bytes."""
    try:
        from rnnslim.quantize.qtensor import QTensor
    except ImportError:
        return [], 0, 0
    prefixes, total, nonzero = [], 0, 0
    for name, mod in module.named_modules():
        if isinstance(mod, QTensor):
            w = mod.dequantize()
            prefixes.append(name + ".")
            total += w.numel()
            nonzero += int(torch.count_nonzero(w))
    return prefixes, total, nonzero


def count_parameters(module: nn.Module) -> tuple[int, int, int]:
    """(parameters, non-zero parameters, aux elements) of the stored tensors.

    Packed low-bit matrices count as the weights they hold (their codes, scales and
    codebooks go to aux)."""
    prefixes, total, nonzero = _packed_weights(module)
    aux = 0
    for name, t in stored_tensors(module).items():
        if is_table(name):
            continue
        if is_aux(name, t) or any(name.startswith(p) for p in prefixes):
            aux += t.numel()
            continue
        total += t.numel()
        nonzero += int(torch.count_nonzero(t))
    return total, nonzero, aux


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def measure_artifact(model: nn.Module, artifact_path: str | os.PathLike | None = None) -> tuple[int, str]:
    """(bytes on disk, description). A SequenceModel not on disk is saved with save_model to a
    temporary directory; any other module is saved as a safetensors file of its state_dict."""
    from rnnslim.io.format import artifact_bytes, save_model

    if artifact_path is not None:
        p = Path(artifact_path)
        if p.is_dir() and not (p / "model.json").exists():
            return _dir_bytes(p), str(p)  # a directory of files the user says makes up the artifact
        if p.is_file() and p.suffix != ".json":
            return p.stat().st_size, str(p)
        return artifact_bytes(p), str(p)
    with tempfile.TemporaryDirectory(prefix="rnnslim-size-") as tmp:
        if hasattr(model, "spec"):
            path = save_model(model, Path(tmp) / "model")
            return artifact_bytes(path), "save_model (manifest + safetensors)"
        from safetensors.torch import save_file

        f = Path(tmp) / "weights.safetensors"
        save_file({k: v.contiguous().cpu() for k, v in stored_tensors(model).items()}, str(f))
        return f.stat().st_size, "safetensors of the state_dict (user module)"


def size_stats(model: nn.Module, artifact_path: str | os.PathLike | None = None) -> SizeStats:
    """Parameters, non-zeros and real artifact bytes of `model` (see the module docstring)."""
    params, nonzero, aux = count_parameters(model)
    nbytes, where = measure_artifact(model, artifact_path)
    bits = nbytes * 8 / params if params else 0.0
    return SizeStats(parameters=params, nonzero_parameters=nonzero, aux_elements=aux, artifact_bytes=nbytes,
                     artifact=where, bits_per_parameter=bits, table_elements=count_tables(model))
