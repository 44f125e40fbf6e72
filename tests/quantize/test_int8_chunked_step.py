"""The C step's chunks of units (rnnslim_core.h "the chunked step"): hidden sizes that split into
several chunks (16 LSTM / 32 GRU / 64 RNN units) give the torch integer reference bit for bit in
every matrix format (dense, tile-sparse, 2:4, strips) and kernel build, in the delta step too, and
the accumulators the scratch counts are one chunk of gate rows, not G * hidden rows."""

from __future__ import annotations

import pytest
import torch
from int8_models import VARIANTS, delta_model, integer_model, zero_tiles
from nm24_models import nm24_model
from strips_models import strips_model

from rnnslim.quantize.int8 import IntegerRunner
from rnnslim.quantize.int8.delta_reference import delta_reference
from rnnslim.quantize.int8.packed import IntegerProgram

HIDDEN = (128, 48)  # LSTM 8 + 3 chunks of 16; GRU 4 of 32 + 3 of 16; RNN 2 of 64 + 3 of 16


def _model(cell: str, fmt: str):
    if fmt == "nm24":
        return nm24_model(cell, hidden=HIDDEN, seed=2)
    if fmt == "strips":
        return strips_model(cell, hidden=HIDDEN, keep=0.4, seed=2)
    q = integer_model(cell, hidden=HIDDEN, seed=2)
    return zero_tiles(q) if fmt == "tiles" else q


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("fmt, sparse", [("dense", False), ("tiles", True), ("nm24", "nm24"), ("strips", "strips")])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
def test_chunked_step_equals_the_torch_reference_in_every_format(cell, fmt, sparse, variant):
    q = _model(cell, fmt)
    runner = IntegerRunner(q, variant, fold_embedding=False, sparse=sparse)
    assert all(m.format != "dense" for ly in runner.program.layers for m in (ly.wx, ly.wh)) == (fmt != "dense")
    x = torch.randint(0, 30, (12,), generator=torch.Generator().manual_seed(5))
    ref, _ = q(x[:, None])
    logits, _ = runner.run(x)
    assert torch.equal(logits, ref[:, 0]) and logits.abs().sum() > 0


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_chunked_delta_step_equals_its_torch_twin(cell, variant):
    q = delta_model(cell, "linear", hidden=HIDDEN)
    x = torch.cumsum(0.3 * torch.randn(30, 13, generator=torch.Generator().manual_seed(1)), 0)
    thr = {0: 3, 1: 6}
    logits, _ = IntegerRunner(q, variant, delta=thr).run_features(x)
    assert torch.equal(logits, delta_reference(q, x, delta=thr)[0])


@pytest.mark.parametrize("cell, hidden, units, rows", [
    ("lstm", (128, 48), [16, 16], 64), ("gru", (128, 48), [32, 16], 96), ("rnn_tanh", (128, 48), [64, 16], 64),
    ("lstm", (40, 33), [40, 33], 160),  # not multiples of 16: one chunk of every unit, rows_p accumulators
])
def test_scratch_counts_one_chunk_of_gate_rows(cell, hidden, units, rows):
    p = IntegerProgram.from_model(integer_model(cell, hidden=hidden), fold_embedding=False)
    assert [ly.chunk_units for ly in p.layers] == units and p.max_chunk == rows
    assert p.max_rows == 32 and p.max_cols == max(48, hidden[0])  # decoder rows (29 -> 32); widest codes
    assert p.scratch_bytes() == 5 * p.max_cols + 4 * (2 * rows + 32)
