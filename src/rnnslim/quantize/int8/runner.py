"""IntegerRunner: the integer int8 model as one C call per streaming step.

    runner = IntegerRunner(model)          # model converted with Int8Mode.INTEGER
    state = runner.init_state()
    for token in stream:
        logits = runner.step(token, state) # (O,) float32, state updated in place

`step` writes into a buffer owned by the runner (no allocation per step); clone the
logits to keep them past the next step, or pass `out=`. Outputs and states equal the
torch reference (SequenceModel.forward of the same model) bit for bit; `state_to_torch`
/ `state_from_torch` convert to and from SequenceModel's state list.

Supported: embedding input, unidirectional LSTM / GRU / tanh-RNN layers (any hidden
size per layer), per-step readout ("all"), batch 1. A runner owns scratch buffers: use
one runner per thread (states are separate objects and may be many).

For embedding models with V <= E (character LMs) the runner folds the embedding into the
first layer: a table of the layer-0 input terms per token replaces that matmul (same
integers, a quarter fewer weight bytes read per step).
"""

from __future__ import annotations

import weakref

import torch
from torch import Tensor

from rnnslim.models.sequence import InputKind, Readout, SequenceModel
from rnnslim.quantize.int8.fixedpoint import GATE_FRAC
from rnnslim.quantize.int8.integer import (
    IntegerEmbedding,
    IntegerLinear,
    IntegerRecurrent,
    LinearOutput,
)
from rnnslim.quantize.int8.kernel import KernelVariant, load_kernel
from rnnslim.recurrent.gates import CellType

_CELL_ID = {CellType.LSTM: 0, CellType.GRU: 1, CellType.RNN_TANH: 2}
FOLD_MAX_BYTES = 64 << 20  # folded embedding table (V x G*H int32) is built only below this size


def _ptr(t: Tensor) -> int:
    return t.data_ptr()


class IntegerState:
    """Recurrent state of an IntegerRunner: one int16 buffer (per layer LSTM [h8 | c], GRU/RNN [h16])."""

    def __init__(self, length: int) -> None:
        self.buf = torch.zeros(length, dtype=torch.int16)
        self.ptr = self.buf.data_ptr()

    def clone(self) -> IntegerState:
        s = IntegerState(self.buf.numel())
        s.buf.copy_(self.buf)
        return s


def check_integer_model(model: SequenceModel) -> None:
    """Raise a clear error if IntegerRunner cannot run this model."""
    embedding = getattr(model, "embedding", None)
    if model.spec.input_kind is not InputKind.EMBEDDING or not isinstance(embedding, IntegerEmbedding):
        raise ValueError("IntegerRunner needs an integer int8 model with an embedding input "
                         "(quantize_int8_(model, Int8Config(mode=Int8Mode.INTEGER)))")
    if model.spec.readout is not Readout.ALL:
        raise ValueError(f"IntegerRunner streams one output per step; readout {model.spec.readout.value!r} "
                         "is not supported")
    for k, layer in enumerate(model.rnn.layers):
        if not isinstance(layer, IntegerRecurrent):
            raise ValueError(f"rnn.layers.{k} is a {type(layer).__name__}, not an integer int8 layer")
        if layer.bidirectional:
            raise ValueError(f"rnn.layers.{k} is bidirectional: a streaming step cannot see the future; run "
                             "bidirectional integer models through SequenceModel.forward")
    dec = model.decoder
    if not isinstance(dec, IntegerLinear) or dec.output is not LinearOutput.FLOAT:
        raise ValueError("IntegerRunner needs the integer decoder (IntegerLinear with float output)")


class IntegerRunner:
    def __init__(self, model: SequenceModel, variant: KernelVariant | str = KernelVariant.NATIVE,
                 fold_embedding: bool | None = None) -> None:
        check_integer_model(model)
        model = model.cpu()
        self.lib = lib = load_kernel(variant)
        self.variant = KernelVariant(variant)
        layers: list[IntegerRecurrent] = list(model.rnn.layers)
        self.cell = model.rnn.cell
        emb, dec = model.embedding, model.decoder
        V, E, O = emb.num_embeddings, emb.embedding_dim, dec.out_features
        self.hidden = [layer.hidden_size for layer in layers]
        self.vocab, self.out_size = V, O
        handle = lib.rs_new(_CELL_ID[self.cell], len(layers), V, E, O)
        if not handle:
            raise MemoryError("rs_new failed (out of memory or invalid sizes)")
        self._handle = handle
        self._finalizer = weakref.finalize(self, lib.rs_free, handle)
        keep = []  # contiguous copies alive until C has copied them

        def c(t: Tensor) -> int:
            t = t.detach().contiguous()
            keep.append(t)
            return _ptr(t)

        lib.rs_set_embedding(handle, c(emb.weight))
        for k, layer in enumerate(layers):
            d = layer.direction(0)
            rc = lib.rs_set_layer(handle, k, layer.input_size, layer.hidden_size, c(d.w_ih), c(d.w_hh), c(d.mult_ih),
                                  c(d.shift_ih), c(d.mult_hh), c(d.shift_hh), c(d.bias), int(layer.h_mult),
                                  int(layer.h_shift), layer.cell_frac, c(layer.sig_lut), c(layer.tanh_lut))
            if rc:
                raise ValueError(f"rnn.layers.{k}: the kernel rejected the layer (code {rc})")
        if lib.rs_set_decoder(handle, dec.in_features, c(dec.weight), c(dec.bias), c(dec.out_scale.float())):
            raise MemoryError("rs_set_decoder failed")
        if fold_embedding is None:  # a table row replaces the layer-0 input matmul
            fold_embedding = V * 4 * layers[0].w_ih.shape[0] <= min(FOLD_MAX_BYTES, 4 * layers[0].w_ih.numel())
        self.fold_embedding = bool(fold_embedding)
        rc = lib.rs_finalize(handle, int(self.fold_embedding))
        if rc:
            raise ValueError(f"the kernel rejected the model (code {rc}): layer sizes do not chain")
        self.state_len = lib.rs_state_len(handle)
        self._logits = torch.empty(O, dtype=torch.float32)
        self._logits_ptr = _ptr(self._logits)
        self._step = lib.rs_step

    @property
    def simd_level(self) -> int:
        """3 = AVX512-VNNI, 2 = AVX2, 0 = portable C."""
        return int(self.lib.rs_simd_level())

    def init_state(self) -> IntegerState:
        return IntegerState(self.state_len)

    def step(self, token: int, state: IntegerState, out: Tensor | None = None) -> Tensor:
        """One token at batch 1: returns (O,) float32 logits (the runner's buffer unless `out`)."""
        if out is None:
            if self._step(self._handle, token, state.ptr, self._logits_ptr):
                raise IndexError(f"token {token} is outside the vocabulary [0, {self.vocab})")
            return self._logits
        if out.dtype != torch.float32 or not out.is_contiguous() or out.numel() != self.out_size:
            raise ValueError(f"out must be a contiguous float32 tensor of {self.out_size} elements")
        if self._step(self._handle, token, state.ptr, out.data_ptr()):
            raise IndexError(f"token {token} is outside the vocabulary [0, {self.vocab})")
        return out

    def run(self, tokens: Tensor, state: IntegerState | None = None) -> tuple[Tensor, IntegerState]:
        """tokens (T,) ids -> (logits (T, O), final state); one C call for the whole sequence."""
        state = state if state is not None else self.init_state()
        ids = tokens.detach().reshape(-1).to(torch.int64).contiguous()
        logits = torch.empty(ids.numel(), self.out_size, dtype=torch.float32)
        bad = self.lib.rs_run(self._handle, _ptr(ids), ids.numel(), state.ptr, _ptr(logits))
        if bad:
            raise IndexError(f"token {int(ids[bad - 1])} at position {bad - 1} is outside the vocabulary "
                             f"[0, {self.vocab})")
        return logits, state

    def stream_step_fn(self, tokens: Tensor | list[int] | None = None, seed: int = 0):
        """A `step_fn(state) -> state` for rnnslim.measure.streaming_latency: one runner.step per
        call at batch 1, state carried (None at the start), inputs cycling through `tokens`
        (256 random ids by default)."""
        if tokens is None:
            tokens = torch.randint(0, self.vocab, (256,), generator=torch.Generator().manual_seed(seed))
        ids = [int(t) for t in tokens]
        box = {"i": 0}

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
