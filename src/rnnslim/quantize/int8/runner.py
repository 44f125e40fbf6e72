"""IntegerRunner: the integer int8 model as one C call per streaming step or per sequence.

    runner = IntegerRunner(model)          # model converted with Int8Mode.INTEGER
    state = runner.init_state()
    for token in stream:
        logits = runner.step(token, state) # (O,) float32, state updated in place

    logits = runner.run_sequence(x)        # whole sequence from the zero state: tokens (T,) or
                                           # features (T, F) -> (T, O) (readout "all") or (O,) ("last")

`step` writes into a buffer owned by the runner (no allocation per step); clone the
logits to keep them past the next step, or pass `out=`. Outputs and states equal the
torch reference (SequenceModel.forward of the same model) bit for bit; `state_to_torch`
/ `state_from_torch` convert to and from SequenceModel's state list.

Supported: embedding input (step / run) or float features (input kind identity / linear:
step_features / run_features; an input activation after the projection runs as a table),
LSTM / GRU / tanh-RNN layers (any hidden size per layer), readout "all" or "last" (the final
step's output), batch 1. Streaming (step / run / step_features / run_features) needs
unidirectional layers and one frame per step; `run_sequence` (rs_core_run: layer by layer over
the whole sequence, the backward direction walking it in reverse) runs every supported model,
bidirectional ones and windowed inputs (a Conv1d front end) included, and equals SequenceModel.forward from
the zero state bit for bit. Readout "mean" is refused: torch averages float32 outputs, which
an integer program does not reproduce bit for bit. A runner owns scratch buffers: use one
runner per thread (states are separate objects and may be many).

For embedding models with V <= E (character LMs) the runner folds the embedding into the
first layer: a table of the layer-0 input terms per token replaces that matmul (same
integers, a quarter fewer weight bytes read per step). Matrices whose non-zeros fill few
16 x 4 tiles (block pruning) are stored tile-sparse and only their tiles are multiplied;
matrices whose zeros are whole 16 x 1 column strips (strip pruning) are stored in the strips
format where packed.py's cost rule says it is faster (strips.py: kept strips gathered into
16 x 4 tiles); N:M-pruned matrices are stored in the panels format (panels.py) where the cost rule
says so AND the loaded kernel build runs panels fast (rs_panels_fast: AVX512-VBMI and portable builds;
an AVX2-only build keeps them dense, where panels measured 0.84x). `sparse=` forces a layout (False
dense, True tile-sparse, "strips", "panels"); sparse="nm24" also stores 2:4 matrices in the 2:4 format, nm24.py.

Delta models (delta.py: IntegerRecurrent.delta_threshold, or `delta=` here to override) step
with the kernel's delta step: a state then also holds the stream's delta state, and
`delta_stats(state)` reads its MAC counters. `state.reset()` restarts a stream in place.
"""

from __future__ import annotations

import weakref

import numpy as np
import torch
from torch import Tensor

from rnnslim.models.sequence import Readout, SequenceModel
from rnnslim.quantize.int8.fixedpoint import GATE_FRAC
from rnnslim.quantize.int8.delta import DeltaStats, Thresholds, delta_stats_of
from rnnslim.quantize.int8.kernel import KernelVariant, load_kernel
from rnnslim.quantize.int8.packed import CELL_ID, INPUT_ID, IntegerProgram
from rnnslim.quantize.int8.supported import check_integer_model
from rnnslim.recurrent.gates import CellType

__all__ = ["IntegerRunner", "IntegerState", "check_integer_model"]


def _ptr(t: Tensor) -> int:
    return t.data_ptr()


class IntegerState:
    """Recurrent state of an IntegerRunner: one int16 buffer (per layer LSTM [h8 | c], GRU/RNN [h16]),
    and for a delta model the stream's delta state (last transmitted codes, accumulators, MAC
    counters: rnnslim_core.h "delta networks"; `delta_bytes` bytes, zero at the start)."""

    def __init__(self, length: int, delta_bytes: int = 0) -> None:
        self.buf = torch.zeros(length, dtype=torch.int16)
        self.ptr = self.buf.data_ptr()
        self.delta = torch.zeros(-(-delta_bytes // 8), dtype=torch.int64) if delta_bytes else None  # 8-byte aligned
        self.delta_ptr = None if self.delta is None else self.delta.data_ptr()

    def clone(self) -> IntegerState:
        s = IntegerState(self.buf.numel(), 0 if self.delta is None else 8 * self.delta.numel())
        s.buf.copy_(self.buf)
        if self.delta is not None:
            s.delta.copy_(self.delta)
        return s

    def reset(self) -> IntegerState:
        """The zero state (and a fresh delta state with zeroed counters), in place."""
        self.buf.zero_()
        if self.delta is not None:
            self.delta.zero_()
        return self


class IntegerRunner:
    def __init__(self, model: SequenceModel, variant: KernelVariant | str = KernelVariant.NATIVE,
                 fold_embedding: bool | None = None, sparse: bool | str = "auto",
                 delta: Thresholds | str = "model") -> None:
        self.lib = lib = load_kernel(variant)  # first: its build decides whether "auto" may pick panels
        program = IntegerProgram.from_model(model.cpu(), fold_embedding=fold_embedding, sparse=sparse, delta=delta,
                                            panels_fast=bool(lib.rs_panels_fast()))
        self.program = program
        self.variant = KernelVariant(variant)
        self.cell = program.cell
        self.hidden = [ly.hidden for ly in program.layers]
        self.vocab, self.out_size = program.vocab, program.out
        L = len(program.layers)
        self.bidirectional = program.bidirectional
        self.readout = Readout(program.readout)
        handle = lib.rs_new(CELL_ID[self.cell], L, program.vocab, program.embed, program.out)
        if not handle:
            raise MemoryError("rs_new failed (out of memory or invalid sizes)")
        self._handle = handle
        self._finalizer = weakref.finalize(self, lib.rs_free, handle)
        self.fold_embedding = program.layers[0].tx_table is not None

        def p(a: np.ndarray | None) -> int | None:  # the kernel copies every array before the call returns
            return None if a is None else a.ctypes.data

        def check(rc: int, what: str) -> None:
            if rc:
                raise (MemoryError if rc == -1 else ValueError)(f"{what}: the kernel rejected it (code {rc})")

        self.input_kind = program.input_kind
        inp = program.inputs
        self.features = inp.frame if inp is not None else None  # features per step (per frame of a window)
        self.windowed = inp is not None and inp.windowed
        if inp is None and program.tied_embedding:  # the lookup reads the decoder's table: one copy
            check(lib.rs_set_embedding_tied(handle), "embedding (tied to the decoder)")
        elif inp is None:
            check(lib.rs_set_embedding(handle, p(program.emb)), "embedding")
        else:
            check(lib.rs_set_input(handle, INPUT_ID[inp.kind], inp.features, inp.in_scale, p(inp.bias), p(inp.mult),
                                   p(inp.shift)), "input")
            if inp.windowed or inp.act is not None:
                check(lib.rs_set_window(handle, inp.window, inp.padding, p(inp.act)), "input window / activation")
        # slots: 2l / 2l + 1 W_ih / W_hh, 2L decoder, 2L + 1 input projection, 2L + 2 + 2l / 2L + 3 + 2l
        # the backward direction's W_ih / W_hh (kernel.c rs_set_matrix)
        mats = {s: m for k, ly in enumerate(program.layers) for s, m in ((2 * k, ly.wx), (2 * k + 1, ly.wh))}
        mats[2 * L] = program.dec
        if inp is not None and inp.proj is not None:
            mats[2 * L + 1] = inp.proj
        for k, ly in enumerate(program.layers):
            if ly.rev is not None:
                mats[2 * L + 2 + 2 * k], mats[2 * L + 3 + 2 * k] = ly.rev.wx, ly.rev.wh
        for slot, m in mats.items():
            if m.panels:
                check(lib.rs_set_matrix_panels(handle, slot, m.rows, m.cols, p(m.w), p(m.corr), p(m.panel_ptr),
                                               p(m.panel_idx), m.n_tiles), f"matrix {slot}")
                continue
            if m.strips:
                check(lib.rs_set_matrix_strips(handle, slot, m.rows, m.cols, p(m.w), p(m.corr), p(m.strip_ptr),
                                               p(m.strip_idx), m.n_tiles), f"matrix {slot}")
                continue
            if m.nm24:
                check(lib.rs_set_matrix_nm24(handle, slot, m.rows, m.cols, p(m.w), p(m.corr), p(m.nm_idx)),
                      f"matrix {slot}")
                continue
            check(lib.rs_set_matrix(handle, slot, m.rows, m.cols, p(m.w), p(m.corr), p(m.tile_ptr), p(m.tile_col),
                                    m.n_tiles if m.sparse else -1), f"matrix {slot}")
        for k, ly in enumerate(program.layers):
            check(lib.rs_set_layer(handle, k, ly.input, ly.hidden, p(ly.mult_x), p(ly.shift_x), p(ly.mult_h),
                                   p(ly.shift_h), p(ly.bias), ly.h_mult, ly.h_shift, ly.cf, p(ly.sig), p(ly.tanh),
                                   p(ly.tx_table)), f"rnn.layers.{k}")
            if ly.delta_thr is not None:
                check(lib.rs_set_delta(handle, k, ly.delta_thr, p(ly.wx_cols), p(ly.wh_cols)), f"rnn.layers.{k} (delta)")
            if (r := ly.rev) is not None:
                check(lib.rs_set_reverse(handle, k, p(r.mult_x), p(r.shift_x), p(r.mult_h), p(r.shift_h), p(r.bias),
                                         p(r.tx_table)), f"rnn.layers.{k} (backward direction)")
        check(lib.rs_set_decoder(handle, p(program.dec_bias), p(program.dec_scale)), "decoder")
        check(lib.rs_finalize(handle), "the model (layer sizes do not chain)")
        self.state_len = lib.rs_state_len(handle)
        self.delta = program.delta
        self.delta_bytes = int(lib.rs_delta_bytes(handle)) if self.delta else 0
        self._last_state: IntegerState | None = None  # what delta_stats() reads by default
        self._logits = torch.empty(program.out, dtype=torch.float32)
        self._logits_ptr = _ptr(self._logits)
        self._step = lib.rs_step
        if self.features is not None:
            self._step = None  # token steps do not apply: step_features / run_features
        self._workspace = torch.empty(0, dtype=torch.uint8)  # grown on demand by run_sequence

    @property
    def simd_level(self) -> int:
        """3 = AVX512-VNNI, 2 = AVX2, 0 = portable C."""
        return int(self.lib.rs_simd_level())

    def init_state(self) -> IntegerState:
        return IntegerState(self.state_len, self.delta_bytes)

    def _delta_ptr(self, state: IntegerState):
        """The state's delta buffer for a delta runner (None for a dense one); checks it fits."""
        if not self.delta:
            return None
        if state.delta is None or 8 * state.delta.numel() < self.delta_bytes:
            raise ValueError("this runner steps with the delta step: use a state from its init_state()")
        self._last_state = state
        return state.delta_ptr

    def delta_stats(self, state: IntegerState | None = None) -> DeltaStats:
        """MAC counters of the delta steps `state` went through since it was created or reset
        (default: the state of the runner's last call)."""
        if not self.delta:
            raise ValueError("this runner has no delta layers (set_delta_threshold_ or IntegerRunner(delta=...))")
        state = state if state is not None else self._last_state
        if state is None:
            raise ValueError("no state has stepped yet: pass one")
        return delta_stats_of(self.program, state.delta)

    def _streaming(self) -> None:
        if self.bidirectional:
            raise ValueError("this model has bidirectional layers: a streaming step cannot see the future; "
                             "run whole sequences with run_sequence(x)")
        if self.windowed:
            raise ValueError(f"this model's input projection reads windows of {self.program.inputs.window} frames (a "
                             "Conv1d front end): a streaming step cannot see the later frames; run whole sequences "
                             "with run_sequence(x)")

    def _needs_tokens(self) -> None:
        self._streaming()
        if self.features is not None:
            raise TypeError(f"this model takes {self.features} float features per step (input kind "
                            f"{self.input_kind.value!r}): use step_features / run_features")

    def step(self, token: int, state: IntegerState, out: Tensor | None = None) -> Tensor:
        """One token at batch 1: returns (O,) float32 logits (the runner's buffer unless `out`)."""
        self._needs_tokens()
        if self.delta:
            return self._step_delta(token, state, out)
        if out is None:
            if self._step(self._handle, token, state.ptr, self._logits_ptr):
                raise IndexError(f"token {token} is outside the vocabulary [0, {self.vocab})")
            return self._logits
        if out.dtype != torch.float32 or not out.is_contiguous() or out.numel() != self.out_size:
            raise ValueError(f"out must be a contiguous float32 tensor of {self.out_size} elements")
        if self._step(self._handle, token, state.ptr, out.data_ptr()):
            raise IndexError(f"token {token} is outside the vocabulary [0, {self.vocab})")
        return out

    def _step_delta(self, token: int, state: IntegerState, out: Tensor | None) -> Tensor:
        dp = self._delta_ptr(state)
        if out is not None and (out.dtype != torch.float32 or not out.is_contiguous() or out.numel() != self.out_size):
            raise ValueError(f"out must be a contiguous float32 tensor of {self.out_size} elements")
        out = self._logits if out is None else out
        if self.lib.rs_step_delta(self._handle, token, state.ptr, dp, out.data_ptr()):
            raise IndexError(f"token {token} is outside the vocabulary [0, {self.vocab})")
        return out

    def run(self, tokens: Tensor, state: IntegerState | None = None) -> tuple[Tensor, IntegerState]:
        """tokens (T,) ids -> (logits (T, O), final state); one C call for the whole sequence."""
        self._needs_tokens()
        state = state if state is not None else self.init_state()
        ids = tokens.detach().reshape(-1).to(torch.int64).contiguous()
        logits = torch.empty(ids.numel(), self.out_size, dtype=torch.float32)
        if self.delta:
            bad = self.lib.rs_run_delta(self._handle, _ptr(ids), ids.numel(), state.ptr, self._delta_ptr(state),
                                        _ptr(logits))
        else:
            bad = self.lib.rs_run(self._handle, _ptr(ids), ids.numel(), state.ptr, _ptr(logits))
        if bad:
            raise IndexError(f"token {int(ids[bad - 1])} at position {bad - 1} is outside the vocabulary "
                             f"[0, {self.vocab})")
        return logits, state

    def step_features(self, x: Tensor, state: IntegerState, out: Tensor | None = None) -> Tensor:
        """One step of a feature model: x (F,) float -> (O,) float32 logits (the runner's buffer unless `out`)."""
        self.run_features(x.reshape(1, -1), state, self._logits[None] if out is None else out.reshape(1, -1))
        return self._logits if out is None else out

    def run_features(self, x: Tensor, state: IntegerState | None = None,
                     out: Tensor | None = None) -> tuple[Tensor, IntegerState]:
        """x (T, F) float features -> (logits (T, O), final state); one C call for the whole sequence.
        For readout "last" the model's output is the final row."""
        self._streaming()
        if self.features is None:
            raise TypeError("this model takes token ids: use step / run")
        state = state if state is not None else self.init_state()
        xs = x.detach().to(torch.float32).reshape(-1, self.features).contiguous()
        logits = out if out is not None else torch.empty(xs.shape[0], self.out_size, dtype=torch.float32)
        if logits.dtype != torch.float32 or not logits.is_contiguous() or logits.shape != (xs.shape[0], self.out_size):
            raise ValueError(f"out must be a contiguous float32 tensor of shape ({xs.shape[0]}, {self.out_size})")
        if self.delta:
            self.lib.rs_run_features_delta(self._handle, _ptr(xs), xs.shape[0], state.ptr, self._delta_ptr(state),
                                           _ptr(logits))
        else:
            self.lib.rs_run_features(self._handle, _ptr(xs), xs.shape[0], state.ptr, _ptr(logits))
        return logits, state

    def workspace_bytes(self, steps: int) -> int:
        """Bytes of the workspace a whole-sequence run of `steps` needs (rs_core_run_workspace)."""
        return int(self.lib.rs_workspace_bytes(self._handle, steps))

    def run_sequence(self, x: Tensor) -> Tensor:
        """The whole sequence from the zero state, one C call (rs_core_run): tokens (T,) or
        features (T, F) -> logits (T, O) for readout "all", (O,) for readout "last" (a windowed input:
        T + 2p - k + 1 output steps). Runs every supported model, bidirectional and windowed ones
        included, and equals SequenceModel.forward bit for bit
        (delta layers included: their delta steps from a fresh delta state)."""
        if self.features is None:
            ids = x.detach().reshape(-1).to(torch.int64)
            bad = ((ids < 0) | (ids >= self.vocab)).nonzero()
            if bad.numel():
                i = int(bad[0, 0])
                raise IndexError(f"token {int(ids[i])} at position {i} is outside the vocabulary [0, {self.vocab})")
            tokens, feats = ids.to(torch.int32).contiguous(), None
            T = tokens.numel()
        else:
            feats, tokens = x.detach().to(torch.float32).reshape(-1, self.features).contiguous(), None
            T = feats.shape[0]
        steps = T
        if self.windowed and T:  # a Conv1d front end: T + 2p - k + 1 output steps
            inp = self.program.inputs
            steps = T + 2 * inp.padding - inp.window + 1
            if steps < 1:
                raise ValueError(f"a sequence of {T} frames is shorter than the input window ({inp.window} frames with "
                                 f"padding {inp.padding}); give at least {inp.window - 2 * inp.padding} frames")
        last = self.readout is Readout.LAST
        if last and T == 0:
            raise ValueError("readout 'last' needs at least one step")
        if T >= 2**31:
            raise ValueError(f"a sequence has at most 2^31 - 1 steps, got {T}")
        need = self.workspace_bytes(T)
        if self._workspace.numel() < need:
            self._workspace = torch.empty(need, dtype=torch.uint8)
        logits = torch.empty((self.out_size,) if last else (steps, self.out_size), dtype=torch.float32)
        rc = self.lib.rs_run_sequence(self._handle, None if tokens is None else _ptr(tokens),
                                      None if feats is None else _ptr(feats), T, _ptr(self._workspace), int(last),
                                      _ptr(logits))
        if rc:
            raise RuntimeError(f"rs_run_sequence failed (code {rc})")
        return logits

    def stream_step_fn(self, tokens: Tensor | list[int] | None = None, seed: int = 0):
        """A `step_fn(state) -> state` for rnnslim.measure.streaming_latency: one runner.step per
        call at batch 1, state carried (None at the start), inputs cycling through `tokens`
        (256 random ids by default)."""
        box = {"i": 0}
        if self.features is not None:  # feature models: 256 random feature vectors
            feats = torch.randn(256, self.features, generator=torch.Generator().manual_seed(seed))

            def feature_step(state: IntegerState | None) -> IntegerState:
                state = state if state is not None else self.init_state()
                self.step_features(feats[box["i"] % 256], state)
                box["i"] += 1
                return state

            return feature_step
        if tokens is None:
            tokens = torch.randint(0, self.vocab, (256,), generator=torch.Generator().manual_seed(seed))
        ids = [int(t) for t in tokens]

        def step_fn(state: IntegerState | None) -> IntegerState:
            state = state if state is not None else self.init_state()
            i = box["i"]
            self.step(ids[i % len(ids)], state)
            box["i"] = i + 1
            return state

        return step_fn

    # --- state conversion ------------------------------------------------------------------
    def state_to_torch(self, state: IntegerState, model: SequenceModel) -> list:
        """The same state in SequenceModel's format (list per layer, shapes (1, 1, H))."""
        out, off = [], 0
        for H, layer in zip(self.hidden, model.rnn.layers):
            if self.cell is CellType.LSTM:
                h = state.buf[off: off + H].float() * layer.h_scale
                c = state.buf[off + H: off + 2 * H].float() * 2.0**-layer.cell_frac
                out.append((h.view(1, 1, H), c.view(1, 1, H)))
                off += 2 * H
            else:
                out.append((state.buf[off: off + H].float() * 2.0**-GATE_FRAC).view(1, 1, H))
                off += H
        return out

    def state_from_torch(self, states: list, model: SequenceModel) -> IntegerState:
        """An IntegerState from SequenceModel's state list (batch 1)."""
        s, off = self.init_state(), 0
        for H, layer, st in zip(self.hidden, model.rnn.layers, states):
            ints = layer.state_to_int(st, 1, torch.device("cpu"))[0]
            parts = list(ints) if self.cell is CellType.LSTM else [ints]
            for p in parts:
                s.buf[off: off + H] = p.reshape(H).to(torch.int16)
                off += H
        return s
