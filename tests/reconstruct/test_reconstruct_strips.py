"""OBS pruning to the integer kernel's column strips (pattern "strips"): the pattern and the
multiple-of-4 rule hold exactly on every pruned tensor, the walk's compensation helps, the
config refuses impossible shapes, and a failure leaves the model as it was."""

import copy

import pytest
import torch
from reconstruct_helpers import batches, logits_error, small_model

from rnnslim.pipeline.stages.reconstruct import PruneOBSStage
from rnnslim.reconstruct import OBSPruning, prune_obs_
from rnnslim.reconstruct import sequential as seq

TARGETS = ("input", "recurrent", "output")
STRIPS = {"pattern": "strips", "strip_rows": 16, "strip_panel": 16, "strip_multiple": 4}


def _check_strips(keep: torch.Tensor, rows: int = 16, panel: int = 16, multiple: int = 4) -> None:
    keep = keep.reshape(keep.shape[0], -1)
    R, C = keep.shape
    for r0 in range(0, R, rows):
        blk = keep[r0:r0 + rows]
        assert bool((blk == blk[:1]).all()), f"rows {r0}.. disagree on their kept columns"
        for c0 in range(0, C, panel):
            k = int(blk[0, c0:c0 + panel].sum())
            assert k % multiple == 0 or k == min(panel, C - c0), (r0, c0, k)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_pattern_and_multiple_hold_exactly(cell):
    m = small_model(cell, hidden=(32, 16))
    res = prune_obs_(m, OBSPruning(sparsity=0.75, targets=TARGETS, calibration_batches=4, **STRIPS), batches(4))
    assert res.report["method"]["strips"] == {"rows": 16, "panel": 16, "multiple": 4}
    for name, keep in res.masks.items():
        w = m.get_parameter(name).detach()
        assert int((w[~keep] != 0).sum()) == 0, name
        _check_strips(keep)
        if w.shape[0] % 16 == 0:  # the decoder (17 rows) has an edge block of one row
            assert abs(res.report["tensors"][name]["sparsity"] - 0.75) < 0.06, name


def test_compensation_beats_the_same_strips_without_it():
    dense, data = small_model(hidden=(32, 16)), batches(6)
    m = copy.deepcopy(dense)
    res = prune_obs_(m, OBSPruning(sparsity=0.6, targets=TARGETS, calibration_batches=6, **STRIPS), data)
    masked = copy.deepcopy(dense)
    with torch.no_grad():
        for name, keep in res.masks.items():
            masked.get_parameter(name).mul_(keep)
    assert logits_error(m, dense, data) < 0.8 * logits_error(masked, dense, data)


def test_global_scope_with_strips_keeps_the_pattern():
    m = small_model(hidden=(32, 16))
    res = prune_obs_(m, OBSPruning(sparsity=0.5, scope="global", calibration_batches=4, **STRIPS), batches(4))
    assert abs(res.report["total"]["sparsity"] - 0.5) < 0.06
    for keep in res.masks.values():
        _check_strips(keep)


def test_impossible_shapes_are_refused():
    with pytest.raises(ValueError, match="strip_panel"):
        OBSPruning(pattern="strips", strip_panel=30, strip_multiple=4)
    with pytest.raises(ValueError):
        OBSPruning(pattern="strips", strip_rows=0)
    stage = PruneOBSStage(pattern="strips", sparsity=0.9, strip_multiple=8)  # recipes take the same fields
    assert stage.strip_multiple == 8 and stage.strip_rows == 16


def test_failure_leaves_the_model_unchanged(monkeypatch):
    m = small_model(hidden=(32, 16))
    before = {k: v.clone() for k, v in m.state_dict().items()}
    calls, real = [], seq.obs_walk

    def failing(*a, **k):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("boom")
        return real(*a, **k)

    monkeypatch.setattr(seq, "obs_walk", failing)
    with pytest.raises(RuntimeError, match="boom"):
        prune_obs_(m, OBSPruning(sparsity=0.75, calibration_batches=2, **STRIPS), batches(2))
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
