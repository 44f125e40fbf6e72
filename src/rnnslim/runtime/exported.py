"""ExportedModel: run an exported C model (rnnslim export --format c) from Python without torch.

    from rnnslim.runtime import ExportedModel
    m = ExportedModel("exported/")          # compiles NAME.c once (cached), or loads lib NAME.so
    state = m.new_state()
    for token in stream:
        logits = m.step(token, state)       # (O,) float32, the model's buffer; copy to keep
    logits = m.run_sequence(tokens)         # a whole sequence (NAME_run): the only entry point
                                            # of a bidirectional model

Only numpy and the C library are used; importing rnnslim.runtime imports no torch. Before
anything is compiled or loaded, every file the manifest lists is checked against its
sha256, so an edited or truncated export is refused with the file named. A library built
ahead of time (`rnnslim export ... --build`) sits beside the sources as lib<NAME>.so with
its digest; otherwise the sources are compiled on first use into the kernel cache.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rnnslim.runtime.build import compile_shared, verified

MANIFEST = "model.json"
FORMAT = "rnnslim-c-int8"
DEFAULT_FLAGS = ("-O3", "-march=native")


class ExportError(ValueError):
    """The directory is not a complete, unmodified rnnslim C export."""


def read_manifest(directory: str | Path) -> dict:
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise ExportError(f"{directory} is not an rnnslim C export (no {MANIFEST})")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ExportError(f"{path} is not valid JSON: {e}") from None
    if meta.get("format") != FORMAT:
        raise ExportError(f"{path}: format {meta.get('format')!r}, expected {FORMAT!r}")
    return meta


def verify_export(directory: str | Path) -> dict:
    """The manifest, after checking every listed file's sha256."""
    directory = Path(directory)
    meta = read_manifest(directory)
    for name, digest in meta.get("files", {}).items():
        f = directory / name
        if not f.is_file():
            raise ExportError(f"{f} is missing from the export")
        if hashlib.sha256(f.read_bytes()).hexdigest() != digest:
            raise ExportError(f"{f} does not match the manifest (edited or damaged); export the model again")
    return meta


def prebuilt_library(directory: Path, name: str) -> Path:
    return directory / f"lib{name}.so"


def build_library(directory: str | Path, flags: Sequence[str] = DEFAULT_FLAGS, into_export: bool = False) -> Path:
    """Compile the export into a shared library: into the cache, or beside the sources
    (lib<NAME>.so + digest) when `into_export` (ahead of time, for users without a compiler
    on the same machine model)."""
    directory = Path(directory)
    meta = verify_export(directory)
    name = meta["name"]
    lib = compile_shared([directory / f"{name}.c"], flags, f"rnnslim_export_{name}",
                         depends=[directory / f"{name}.h", directory / "rnnslim_core.h"])
    if into_export:
        # a new file renamed into place: a process that has the old library loaded keeps its
        # (unlinked) pages; writing over a mapped library in place would crash it (SIGBUS)
        dest = prebuilt_library(directory, name)
        data = lib.read_bytes()
        for path, content in ((dest, data), (dest.with_name(dest.name + ".sha256"),
                                             hashlib.sha256(data).hexdigest().encode())):
            tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
            tmp.write_bytes(content)
            os.replace(tmp, path)
        return dest
    return lib


class ExportedModel:
    def __init__(self, directory: str | Path, flags: Sequence[str] = DEFAULT_FLAGS) -> None:
        directory = Path(directory)
        self.manifest = meta = verify_export(directory)
        self.name = name = meta["name"]
        pre = prebuilt_library(directory, name)
        path = pre if verified(pre) else build_library(directory, flags)
        self.library = path
        lib = ctypes.CDLL(str(path))
        P = ctypes.c_void_p
        self.features = int(meta.get("features") or 0)  # > 0: NAME_step takes float features
        self.bidirectional = bool(meta.get("bidirectional", False))  # no NAME_step: NAME_run only
        self.readout = meta.get("readout", "all")
        arg = P if self.features else ctypes.c_int32
        sigs = {"init": ([], ctypes.c_int)}
        if not self.bidirectional:
            sigs |= {"reset": ([P], None), "step": ([P, arg, P], ctypes.c_int), "step_int": ([P, arg, P], ctypes.c_int)}
        if hasattr(lib, f"{name}_run"):  # exports before whole-sequence support have none
            sigs |= {"run": ([P, ctypes.c_int32, P, P], ctypes.c_int),
                     "workspace_bytes": ([ctypes.c_int32], ctypes.c_size_t)}
        self._fn = {}
        for fn, (args, res) in sigs.items():
            f = getattr(lib, f"{name}_{fn}")
            f.argtypes, f.restype = args, res
            self._fn[fn] = f
        self._lib = lib
        self.vocab, self.outputs, self.state_len = int(meta["vocab"]), int(meta["outputs"]), int(meta["state_len"])
        self.simd_level = int(self._fn["init"]())
        self._logits = np.zeros(self.outputs, np.float32)

    def new_state(self) -> np.ndarray:
        """A zero state: int16 (state_len,), one per stream."""
        return np.zeros(self.state_len, np.int16)

    def _streaming(self) -> None:
        if self.bidirectional:
            raise ValueError("this export has bidirectional layers: a streaming step cannot see the future; "
                             "run whole sequences with run_sequence")

    def _check_state(self, state: np.ndarray) -> int:
        self._streaming()
        if state.dtype != np.int16 or state.shape != (self.state_len,) or not state.flags.c_contiguous:
            raise ValueError(f"state must be a contiguous int16 array of {self.state_len} (use new_state())")
        return state.ctypes.data

    def reset(self, state: np.ndarray) -> None:
        self._fn["reset"](self._check_state(state))

    def _input(self, x):
        """A token id, or for a feature model a float32 (F,) array (kept alive by the caller)."""
        if not self.features:
            return int(x)
        if not (isinstance(x, np.ndarray) and x.dtype == np.float32 and x.shape == (self.features,)
                and x.flags.c_contiguous):
            raise ValueError(f"this model takes a contiguous float32 array of {self.features} features per step")
        return x.ctypes.data

    def step(self, x, state: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """One token (or (F,) float32 features) at batch 1: (O,) float32 logits; `state` is updated in place."""
        self._streaming()
        out = self._logits if out is None else out
        if out.dtype != np.float32 or out.shape != (self.outputs,) or not out.flags.c_contiguous:
            raise ValueError(f"out must be a contiguous float32 array of {self.outputs}")
        if self._fn["step"](self._check_state(state), self._input(x), out.ctypes.data):
            raise IndexError(f"token {x} is outside the vocabulary [0, {self.vocab})")
        return out

    def step_int(self, x, state: np.ndarray) -> np.ndarray:
        """One step, integer outputs: int32 (O,) accumulators (logits = acc * output scale)."""
        self._streaming()
        acc = np.empty(self.outputs, np.int32)
        if self._fn["step_int"](self._check_state(state), self._input(x), acc.ctypes.data):
            raise IndexError(f"token {x} is outside the vocabulary [0, {self.vocab})")
        return acc

    def run(self, inputs, state: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """tokens (T,) or features (T, F) -> (logits (T, O) float32, final state)."""
        self._streaming()
        state = self.new_state() if state is None else state
        xs = (np.ascontiguousarray(inputs, np.float32).reshape(-1, self.features) if self.features
              else np.asarray(inputs).reshape(-1).tolist())
        out = np.empty((len(xs), self.outputs), np.float32)
        for t in range(len(xs)):
            self.step(xs[t], state, out[t])
        return out, state

    def run_sequence(self, inputs) -> np.ndarray:
        """The whole sequence from the zero state (NAME_run): tokens (T,) or features (T, F) ->
        logits (T, O) float32 for readout "all", (O,) for readout "last"."""
        if "run" not in self._fn:
            raise ExportError(f"{self.name} was exported without NAME_run; export the model again")
        if self.features:
            xs = np.ascontiguousarray(inputs, np.float32).reshape(-1, self.features)
        else:
            ids = np.asarray(inputs).reshape(-1)
            bad = np.flatnonzero((ids < 0) | (ids >= self.vocab))
            if bad.size:
                i = int(bad[0])
                raise IndexError(f"token {ids[i]} at position {i} is outside the vocabulary [0, {self.vocab})")
            xs = np.ascontiguousarray(ids, np.int32)
        T = xs.shape[0]
        last = self.readout == "last"
        if last and T == 0:
            raise ValueError("readout 'last' needs at least one step")
        work = np.empty(int(self._fn["workspace_bytes"](T)), np.uint8)
        out = np.empty((self.outputs,) if last else (T, self.outputs), np.float32)
        rc = self._fn["run"](xs.ctypes.data, T, work.ctypes.data, out.ctypes.data)
        if rc:
            raise RuntimeError(f"{self.name}_run failed (code {rc})")
        return out
