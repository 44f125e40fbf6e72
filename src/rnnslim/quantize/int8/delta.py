"""Delta networks on the integer int8 path (Neil et al., "Delta Networks for Optimized
Recurrent Network Computation", 2017): the C kernel's delta step skips the matrix columns
whose input code barely changed.

    from rnnslim.quantize.int8.delta import set_delta_threshold_
    set_delta_threshold_(model, 3)            # every layer; or {0: 2, 1: 4}; None: dense again
    runner = IntegerRunner(model)             # steps with the delta step now
    logits, state = runner.run(tokens)
    runner.delta_stats(state)                 # {"skipped_fraction": 0.41, "macs": ..., ...}

Per layer the kernel keeps the last *transmitted* int8 codes of each input (x for W_ih, the
hidden codes h8 for W_hh) and the int32 accumulators M = W last. A column j whose code moved
by |new - last| >= threshold is transmitted (M += W[:, j] (new - last), last = new); the
others are skipped and their old value stays in M. The gate terms are requant(M), exactly
the dense step's requant(W x) when every column is transmitted, so threshold 0 equals the
dense step bit for bit and so does threshold 1 (only unchanged codes are skipped: still
exact, and already cheaper); larger thresholds trade accuracy for skipped MACs. Thresholds
are in int8 code units of the layer's input and hidden codes (one per layer, for both).

Which matrices: W_hh of every delta layer, and W_ih of every delta layer whose input is
codes that persist in time (the previous layer's output, or a feature model's input codes).
Layer 0 of a token model reads an embedding row (or the folded table row): its W_ih runs
dense. The decoder and a feature model's input projection run dense too.

The threshold lives on the model (IntegerRecurrent.delta_threshold / delta_input, saved with
it), so evaluation, `rnnslim measure` and IntegerRunner use the delta step, and so does the
torch forward of the integer layers (integer_cells.run_direction, batched, each call from the
zero delta state): the bit-exact reference the kernel is tested against (delta_reference.py
adds the MAC counters). Exported C (rnnslim export --format c) runs the delta step too: its
NAME_state holds the stream's delta state (c_source.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from rnnslim.quantize.int8.integer import IntegerRecurrent, check_delta_threshold
from rnnslim.utils.atomic import atomic_verb

DROWS = 64  # RS_DROWS in rnnslim_core.h: the column copies' rows are padded to a multiple of it

Thresholds = int | Mapping[int, int] | Sequence[int | None] | None


def integer_layers(model: nn.Module) -> list[IntegerRecurrent]:
    layers = list(getattr(getattr(model, "rnn", None), "layers", []))
    if not layers or not all(isinstance(ly, IntegerRecurrent) for ly in layers):
        raise ValueError("delta thresholds apply to fully integer int8 models (stage int8_integer / "
                         "quantize_int8_(model, Int8Config(mode=Int8Mode.INTEGER))); this model has other layers")
    return layers


def resolve_thresholds(n_layers: int, threshold: Thresholds) -> list[int | None]:
    """One threshold (or None) per layer from an int (every layer), {layer: threshold} (others
    dense), a list (one per layer) or None (every layer dense)."""
    if threshold is None:
        return [None] * n_layers
    if isinstance(threshold, Mapping):
        bad = [k for k in threshold if not isinstance(k, int) or not 0 <= k < n_layers]
        if bad:
            raise ValueError(f"delta thresholds name layers {bad}; the model has layers 0..{n_layers - 1}")
        return [threshold.get(k) for k in range(n_layers)]
    if isinstance(threshold, Sequence) and not isinstance(threshold, str):
        if len(threshold) != n_layers:
            raise ValueError(f"{len(threshold)} delta thresholds for {n_layers} layers")
        return list(threshold)
    return [threshold] * n_layers


def delta_thresholds(model: nn.Module) -> list[int | None]:
    """The model's delta threshold per layer (None: that layer runs dense)."""
    return [ly.delta_threshold for ly in integer_layers(model)]


def _token_input(model: nn.Module) -> bool:
    spec = getattr(model, "spec", None)
    return spec is not None and getattr(spec.input_kind, "value", None) == "embedding"


def delta_plan(model: nn.Module, threshold: Thresholds | str = "model") -> list[tuple[int, bool] | None]:
    """Per layer (threshold, W_ih too) or None (dense): the model's own ("model") or `threshold`'s
    (resolve_thresholds), W_ih of layer 0 of a token model excluded."""
    layers = integer_layers(model)
    if threshold == "model":
        return [None if ly.delta_threshold is None else (ly.delta_threshold, ly.delta_input) for ly in layers]
    token = _token_input(model)
    values = resolve_thresholds(len(layers), threshold)
    for k, (ly, t) in enumerate(zip(layers, values)):
        try:
            check_delta_threshold(t, ly.bidirectional)
        except ValueError as e:
            raise ValueError(f"rnn.layers.{k}: {e}") from None
    return [None if t is None else (int(t), k > 0 or not token) for k, t in enumerate(values)]


@atomic_verb
def set_delta_threshold_(model: nn.Module, threshold: Thresholds) -> nn.Module:
    """Set (None: clear) the delta thresholds of an integer model in place, all or nothing."""
    plan = delta_plan(model, threshold)  # validates every layer before changing any
    for ly, d in zip(integer_layers(model), plan):
        ly.delta_threshold, ly.delta_input = (None, True) if d is None else d
    return model


def pack_columns(w: torch.Tensor | np.ndarray) -> np.ndarray:
    """(rows, cols) int8 -> the column-blocked copy the delta step reads: rows zero-padded to
    rows_c = a multiple of DROWS, stored (rows_c / DROWS, cols, DROWS) flattened, so the 64-row
    slices of all columns in one chunk of rows are one contiguous block (read chunk by chunk)."""
    w = w.detach().cpu().numpy() if isinstance(w, torch.Tensor) else np.asarray(w)
    if w.ndim != 2 or w.dtype != np.int8:
        raise ValueError(f"pack_columns needs a 2-D int8 matrix, got {w.dtype} {w.shape}")
    rows, cols = w.shape
    padded = np.zeros((-(-rows // DROWS) * DROWS, cols), dtype=np.int8)
    padded[:rows] = w
    return np.ascontiguousarray(padded.reshape(-1, DROWS, cols).transpose(0, 2, 1)).reshape(-1)


@dataclass
class DeltaLayerStats:
    threshold: int | None
    x_columns: int  # columns of W_ih the delta step handles (0: W_ih runs dense)
    h_columns: int
    rows: int
    x_kept: int  # transmitted columns summed over the steps
    h_kept: int

    @property
    def macs(self) -> int:
        return (self.x_kept + self.h_kept) * self.rows

    def dense_macs(self, steps: int) -> int:
        return steps * (self.x_columns + self.h_columns) * self.rows


@dataclass
class DeltaStats:
    """Counters of a stream's delta steps: MACs of the delta matrices executed vs dense, and of
    the whole step (every other matrix-vector product counted dense)."""

    steps: int
    layers: list[DeltaLayerStats]
    other_macs_per_step: int  # dense matrices of the step: layer-0 W_ih of token models, decoder, ...

    @property
    def macs(self) -> int:
        return sum(ly.macs for ly in self.layers)

    @property
    def dense_macs(self) -> int:
        return sum(ly.dense_macs(self.steps) for ly in self.layers)

    @property
    def skipped_fraction(self) -> float:
        return 1.0 - self.macs / self.dense_macs if self.dense_macs else 0.0

    @property
    def step_macs_fraction(self) -> float:
        """MACs of the whole delta step / MACs of the whole dense step."""
        total = self.dense_macs + self.steps * self.other_macs_per_step
        return (self.macs + self.steps * self.other_macs_per_step) / total if total else 1.0

    def to_dict(self) -> dict:
        return {"steps": self.steps, "macs": self.macs, "dense_macs": self.dense_macs,
                "skipped_fraction": self.skipped_fraction, "step_macs_fraction": self.step_macs_fraction,
                "other_macs_per_step": self.other_macs_per_step,
                "layers": [asdict(ly) | {"macs": ly.macs, "dense_macs": ly.dense_macs(self.steps)}
                           for ly in self.layers]}


def delta_stats_of(program, counters: torch.Tensor | np.ndarray) -> DeltaStats:
    """DeltaStats of an IntegerProgram from the int64 counters at the head of a stream's delta
    state (rs_delta_layout: [steps, unused, (kept columns of W_ih, of W_hh) per layer])."""
    c = np.asarray(counters.numpy() if isinstance(counters, torch.Tensor) else counters, dtype=np.int64)
    layers, other = [], program.dec.rows * program.dec.cols
    if program.inputs is not None and program.inputs.proj is not None:
        other += program.inputs.proj.rows * program.inputs.proj.cols
    for k, ly in enumerate(program.layers):
        x_cols = ly.input if ly.wx_cols is not None else 0
        h_cols = ly.hidden if ly.wh_cols is not None else 0
        dense_x = 0 if ly.tx_table is not None else ly.input * ly.rows  # a folded table row is a lookup
        other += (dense_x if x_cols == 0 else 0) + (ly.hidden * ly.rows if h_cols == 0 else 0)
        layers.append(DeltaLayerStats(ly.delta_thr, x_cols, h_cols, ly.rows, int(c[2 + 2 * k]), int(c[3 + 2 * k])))
    return DeltaStats(int(c[0]), layers, other)
