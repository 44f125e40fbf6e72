"""GPTQ for the int8 weights of rnnslim.quantize.int8 (dynamic, static and fully integer).

Those paths store every weight row as symmetric int8 with the scale amax(row) / 127
(quantize/int8/qweights.quantize_rows). `gptq_int8_weights_` walks the float weights
(obs.py) on exactly that grid: each row's scale is fixed from its largest |w|, and that
largest weight is pinned (the compensation never moves it, so the row's largest level stays
+-127). The walked weights are written back as floats that lie on the grid, so the int8
conversion that follows (quantize_int8_, the int8_* stages) derives the same scales and
reproduces the walk's levels exactly: the integer kernel runs GPTQ's codes unchanged.

    gptq_int8_weights_(model, task)                  # float model, weights now on the int8 grid
    quantize_int8_(model, Int8Config(mode="integer"), calibration)
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnslim.prune.importance import as_calibration
from rnnslim.quantize.int8.qweights import QMAX, ROW_SPEC
from rnnslim.quantize.primitives import compute_qparams
from rnnslim.quantize.targets import Target
from rnnslim.reconstruct.gptq import _matrix_weights
from rnnslim.reconstruct.obs import ColumnRule, GridQuantizer, zeros_kept
from rnnslim.reconstruct.sequential import reconstruct_weights_

INT8_TARGETS = (Target.RNN, Target.DECODER, Target.INPUT_PROJ)  # embeddings are lookups: nothing to compensate


def _row_grid(w: Tensor) -> tuple[Tensor, Tensor]:
    """The grid quantize_rows uses: one symmetric scale per row (amax / 127, 1 for zero rows)."""
    return compute_qparams(w, ROW_SPEC)


def _rule(name: str, w: Tensor, H: Tensor) -> ColumnRule:
    pinned = torch.zeros_like(w, dtype=torch.bool)
    pinned[torch.arange(w.shape[0]), w.abs().argmax(1)] = True
    return ColumnRule(fixed_mask=zeros_kept(w), pinned=pinned,
                      quantizer=GridQuantizer(_row_grid, -QMAX, QMAX, group_size=None))  # never -128: |w| <= amax


def gptq_int8_weights_(model: nn.Module, calibration, calibration_batches: int = 32, damp: float = 0.01,
                       block: int = 128, targets=INT8_TARGETS, progress: bool = False) -> dict[str, float]:
    """Move the float recurrent / Linear weights onto their int8 row grids with GPTQ error
    compensation, in place (atomic); returns {weight name: relative output error}."""
    names = _matrix_weights(model, targets)
    if not names:
        raise ValueError("no float recurrent or Linear layers to prepare for int8")
    cal = as_calibration(calibration, calibration_batches)
    outcomes = reconstruct_weights_(model, names, cal, _rule, damp=damp, block=block, progress=progress,
                                    desc="gptq int8")
    return {n: round(o.rel_error, 6) for n, o in outcomes.items()}
