"""ExportedModel: run an exported C model (rnnslim export --format c) from Python without torch.

    from rnnslim.runtime import ExportedModel
    m = ExportedModel("exported/")          # compiles NAME.c once into the private cache
    ids = m.tokens.encode("To be")          # a char / word model: text -> ids as on the device
    for token in ids:                       # (m.tokens is None for a model without a vocabulary)
        logits = m.step(int(token))         # (O,) float32, the model's buffer; copy to keep
    print(m.tokens.decode([int(logits.argmax())]))   # ids -> text
    m.reset()                               # a new stream
    state = m.new_state()                   # several streams: one state each, passed second
    logits = m.step(token, state)
    logits = m.run_sequence(tokens)         # a whole sequence (NAME_run): the only entry point
                                            # of a bidirectional model

Argument order: Python's `step(token, state=None)` takes the input first and the state second
(the state is optional: the model keeps one stream of its own), while C's
`NAME_step(&state, token, logits)` takes the state first. Passing them the C way round is a
TypeError that says so (inputs.check_step_order), never a wrong step.

Only numpy and the C library are used; importing rnnslim.runtime imports no torch. The
export directory is untrusted input: the manifest is validated (manifest.py), every source
it lists is checked against its sha256 and compiled from a private copy into the private
kernel cache (sources.py); a library found in the export directory is never loaded. The
sizes of the buffers handed to the library (outputs, state, features) come from the library
itself (NAME_info) and must agree with the manifest. Tokens are checked before any call:
integers (not bool, not float) in [0, vocab).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rnnslim.runtime.inputs import check_step_order, feature_rows, features_vector, token_id, token_ids
from rnnslim.runtime.manifest import CELL_IDS, FORMAT, INFO_FIELDS, MANIFEST, VOCAB_FILE, ExportError, read_manifest
from rnnslim.runtime.sources import compile_verified, verified_sources, verify_export
from rnnslim.runtime.tokens import TokenTable

DEFAULT_FLAGS = ("-O3", "-march=native")

__all__ = ["DEFAULT_FLAGS", "FORMAT", "MANIFEST", "ExportError", "ExportedModel", "build_library", "read_manifest",
           "verify_export"]


def prebuilt_library(directory: Path, name: str) -> Path:
    return directory / f"lib{name}.so"


def build_library(directory: str | Path, flags: Sequence[str] = DEFAULT_FLAGS, into_export: bool = False) -> Path:
    """Compile the verified export into a shared library in the private cache. `into_export`
    also copies it beside the sources as lib<NAME>.so + digest, for C programs that link it
    (rnnslim.runtime itself never loads a library from an export directory)."""
    directory = Path(directory)
    meta = read_manifest(directory)
    lib = compile_verified(meta, verified_sources(directory, meta), flags, directory)
    if not into_export:
        return lib
    # new files renamed into place: a process that has the old library loaded keeps its
    # (unlinked) pages; writing over a mapped library in place would crash it (SIGBUS)
    dest = prebuilt_library(directory, meta["name"])
    data = lib.read_bytes()
    for path, content in ((dest, data), (dest.with_name(dest.name + ".sha256"), hashlib.sha256(data).hexdigest().encode())):
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(content)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return dest


def library_info(lib: ctypes.CDLL, meta: dict, directory: Path) -> dict[str, int]:
    """NAME_info of the loaded library, checked against the manifest of `directory` (ExportError
    on any difference)."""
    name = meta["name"]
    fn = getattr(lib, f"{name}_info", None)
    if fn is None:
        raise ExportError(f"{name} has no {name}_info (exported by an older rnnslim?): export the model again")
    fn.argtypes, fn.restype = [ctypes.c_void_p, ctypes.c_int], ctypes.c_int
    buf = np.zeros(2 * len(INFO_FIELDS), np.int64)
    count = int(fn(buf.ctypes.data, len(buf)))
    if count < len(INFO_FIELDS) or buf[0] != 1:
        raise ExportError(f"{name}_info reports {count} fields of version {int(buf[0])}; expected "
                          f"{len(INFO_FIELDS)} of version 1: export the model again")
    info = {k: int(v) for k, v in zip(INFO_FIELDS, buf)}
    expected = {"vocab": meta["vocab"], "features": meta["features"], "outputs": meta["outputs"],
                "state_len": meta["state_len"], "state_bytes": meta["state_bytes"],
                "bidirectional": int(meta["bidirectional"]), "readout_last": int(meta["readout"] == "last"),
                "workspace_fixed_bytes": meta["workspace_fixed_bytes"],
                "workspace_bytes_per_step": meta["workspace_bytes_per_step"], "cell": CELL_IDS[meta["cell"]],
                "layers": len(meta["layers"])}
    for k, v in expected.items():
        if info[k] != v:
            raise ExportError(f"{directory / MANIFEST} says {k} = {v} but the library compiled from its sources "
                              f"has {info[k]}: the manifest was edited; export the model again")
    if not info["bidirectional"] and (info["state_bytes"] < 2 * info["state_len"] or info["state_bytes"] % 2):
        raise ExportError(f"{name}_info: a state of {info['state_bytes']} bytes cannot hold {info['state_len']} words")
    return info


class ExportedModel:
    def __init__(self, directory: str | Path, flags: Sequence[str] = DEFAULT_FLAGS) -> None:
        directory = Path(directory)
        self.manifest = meta = read_manifest(directory)
        self.name = name = meta["name"]
        sources = verified_sources(directory, meta)
        self.library = path = compile_verified(meta, sources, flags, directory)
        lib = ctypes.CDLL(str(path))
        info = library_info(lib, meta, directory)
        self.features = info["features"]  # > 0: NAME_step takes float features
        self.bidirectional = bool(info["bidirectional"])
        self.window, self.padding = meta.get("input_window", 1), meta.get("input_padding", 0)  # a Conv1d front end
        self.whole_sequence_only = self.bidirectional or self.window > 1 or self.padding > 0  # no NAME_step
        self.readout = "last" if info["readout_last"] else "all"
        P = ctypes.c_void_p
        arg = P if self.features else ctypes.c_int32
        sigs = {"init": ([], ctypes.c_int), "run": ([P, ctypes.c_int32, P, P], ctypes.c_int),
                "workspace_bytes": ([ctypes.c_int32], ctypes.c_size_t)}
        if not self.whole_sequence_only:
            sigs |= {"reset": ([P], None), "step": ([P, arg, P], ctypes.c_int), "step_int": ([P, arg, P], ctypes.c_int)}
        self._fn = {}
        for fn, (args, res) in sigs.items():
            f = getattr(lib, f"{name}_{fn}", None)
            if f is None:
                raise ExportError(f"the library built from {directory} has no {name}_{fn}: export the model again")
            f.argtypes, f.restype = args, res
            self._fn[fn] = f
        self._lib = lib
        self.vocab, self.outputs, self.state_len = info["vocab"], info["outputs"], info["state_len"]
        self._state_words = info["state_bytes"] // 2  # NAME_state: int16 v[state_len] (+ a delta state)
        self.simd_level = int(self._fn["init"]())
        self._logits = np.zeros(self.outputs, np.float32)
        self._own_state = None if self.whole_sequence_only else self.new_state()  # step(x) without a state: this stream
        # a language model's vocabulary (NAME_encode / vocab.json): text <-> ids; None: ids only
        self.tokens = TokenTable(lib, name, sources[VOCAB_FILE], self.vocab) if meta.get("tokenizer") else None

    def new_state(self) -> np.ndarray:
        """A zero state, one per stream: int16 (state_len,) (a delta model: longer, sizeof(NAME_state) / 2
        words, the delta state after the first state_len)."""
        return np.zeros(self._state_words, np.int16)

    def _streaming(self) -> None:
        if self.whole_sequence_only:
            why = "bidirectional layers" if self.bidirectional else "a windowed input (a Conv1d front end)"
            raise ValueError(f"this export has {why}: a streaming step cannot see the future; "
                             "run whole sequences with run_sequence")

    def _check_state(self, state: np.ndarray) -> int:
        self._streaming()
        if not (isinstance(state, np.ndarray) and state.dtype == np.int16 and state.shape == (self._state_words,)
                and state.flags.c_contiguous and state.flags.writeable and state.ctypes.data % 8 == 0):
            raise ValueError(f"state must be a writable, contiguous, 8-byte aligned int16 array of {self._state_words} "
                             "(use new_state())")
        return state.ctypes.data

    def reset(self, state: np.ndarray | None = None) -> None:
        """Zero `state` (default: the model's own stream, the one step(x) uses without a state)."""
        self._fn["reset"](self._check_state(self._own_state if state is None else state))

    def _step_state(self, x, state) -> np.ndarray:
        """The state a step updates: the caller's, checked for C's argument order, or the model's own."""
        self._streaming()
        check_step_order(x, state, self.name, "features" if self.features else "token")
        return self._own_state if state is None else state

    def _input(self, x):
        """A token id (checked: an integer in [0, vocab)), or for a feature model a finite float32
        (F,) array (kept alive by the caller)."""
        if not self.features:
            return token_id(x, self.vocab)
        return features_vector(x, self.features).ctypes.data

    def _out(self, out: np.ndarray | None, dtype, shape: tuple[int, ...]) -> np.ndarray:
        if out is None:
            return np.zeros(shape, dtype)
        if not (isinstance(out, np.ndarray) and out.dtype == dtype and out.shape == shape and out.flags.c_contiguous
                and out.flags.writeable):
            raise ValueError(f"out must be a writable, contiguous {np.dtype(dtype).name} array of shape {shape}")
        return out

    def step(self, x, state: np.ndarray | None = None, out: np.ndarray | None = None) -> np.ndarray:
        """One token (or (F,) float32 features) at batch 1: (O,) float32 logits (the model's buffer,
        overwritten by the next step, unless `out` is given). `state` (from new_state()) is updated in
        place; without one the model's own stream is (reset() starts it again).

        The input comes first, the state second: the reverse of C's NAME_step(&state, token, logits)
        (the state is the optional argument here); the C order is a TypeError saying so."""
        state = self._step_state(x, state)
        out = self._out(self._logits if out is None else out, np.float32, (self.outputs,))
        ptr, arg = self._check_state(state), self._input(x)
        if self._fn["step"](ptr, arg, out.ctypes.data):
            raise IndexError(f"token {x} is outside the vocabulary [0, {self.vocab})")
        return out

    def step_int(self, x, state: np.ndarray | None = None) -> np.ndarray:
        """One step, integer outputs: int32 (O,) accumulators (logits = acc * output scale); the
        arguments as step's."""
        state = self._step_state(x, state)
        acc = np.empty(self.outputs, np.int32)
        ptr, arg = self._check_state(state), self._input(x)
        if self._fn["step_int"](ptr, arg, acc.ctypes.data):
            raise IndexError(f"token {x} is outside the vocabulary [0, {self.vocab})")
        return acc

    def _sequence(self, inputs) -> np.ndarray:
        """tokens -> (T,) int32 ids in [0, vocab); features -> (T, F) finite float32 rows."""
        return feature_rows(inputs, self.features) if self.features else token_ids(inputs, self.vocab)

    def run(self, inputs, state: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """tokens (T,) or features (T, F) -> (logits (T, O) float32, final state)."""
        self._streaming()
        state = self.new_state() if state is None else state
        self._check_state(state)
        xs = self._sequence(inputs)
        out = np.empty((len(xs), self.outputs), np.float32)
        for t in range(len(xs)):
            self.step(xs[t] if self.features else int(xs[t]), state, out[t])
        return out, state

    def run_sequence(self, inputs) -> np.ndarray:
        """The whole sequence from the zero state (NAME_run): tokens (T,) or features (T, F) ->
        logits (T, O) float32 for readout "all", (O,) for readout "last"."""
        xs = self._sequence(inputs)
        T = xs.shape[0]
        last = self.readout == "last"
        if last and T == 0:
            raise ValueError("readout 'last' needs at least one step")
        if T >= 2**31:
            raise ValueError(f"a sequence of {T} steps is longer than NAME_run takes (2^31 - 1)")
        steps = T + 2 * self.padding - self.window + 1 if T else 0  # output steps (T without a window)
        if steps < (1 if last else 0):
            raise ValueError(f"a sequence of {T} frames is shorter than the input window ({self.window} frames with "
                             f"padding {self.padding})")
        work = np.empty(int(self._fn["workspace_bytes"](T)), np.uint8)
        out = np.empty((self.outputs,) if last else (steps, self.outputs), np.float32)
        rc = self._fn["run"](xs.ctypes.data, T, work.ctypes.data, out.ctypes.data)
        if rc:
            raise RuntimeError(f"{self.name}_run failed (code {rc})")
        return out
