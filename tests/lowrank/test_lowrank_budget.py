"""Rank choice (budget, energy, explicit), clear errors, and all-or-nothing edits."""

from __future__ import annotations

import copy

import pytest
import torch
from lowrank_models import inputs, make, out
from pydantic import ValidationError

from rnnslim.lowrank import LowRank, ToLSTMP, lowrank_, params, to_lstmp_
from rnnslim.lowrank import api as lowrank_api
from rnnslim.lowrank.svd import Piece, allocate, spectrum


def _same(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return a.spec == b.spec and sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("targets", [["input", "recurrent"], ["input", "recurrent", "output"]])
def test_budget_is_respected_and_spent(targets):
    m = make(hidden=(24, 24), embed=16)
    budget = params(m) // 3
    res = lowrank_(m, LowRank(targets=targets, max_params=budget))
    assert res.params_after == params(m) <= budget
    assert res.params_after > 0.9 * budget  # the greedy split uses what it is given
    assert res.params_after == res.params_before - sum(s.params_before - s.params_after for s in res.sites)


def test_budget_for_a_gru_uses_input_and_output():
    m = make("gru", hidden=(24, 24), embed=16)
    budget = params(m) * 2 // 3
    res = lowrank_(m, LowRank(targets=["input", "output"], max_params=budget))
    assert params(m) <= budget and set(res.ranks) == {"input.0", "input.1", "output"}


def test_allocate_prefers_energy_per_parameter():
    torch.manual_seed(0)
    steep = spectrum(torch.diag(torch.tensor([10.0, 1.0, 0.1, 0.01])))
    flat = spectrum(torch.diag(torch.tensor([1.0, 1.0, 1.0, 1.0])))
    pieces = [Piece(steep, 10, 4, steep.total), Piece(flat, 10, 4, flat.total)]
    assert allocate(pieces, budget=50) == [1, 4]  # the flat spectrum's 25 % per unit beats the steep one's 1 %
    assert allocate(pieces, budget=65) == [2, 4]  # flat is full: the next unit goes to steep; 5 left over
    with pytest.raises(ValueError, match="rank 1"):
        allocate(pieces, budget=19)


def test_energy_and_explicit_ranks():
    m = make(hidden=(24,), embed=16)
    res = lowrank_(copy.deepcopy(m), LowRank(targets=["output"], energy=0.5))
    assert res.sites[0].energy_kept >= 0.5
    res = lowrank_(m, LowRank(targets=["input", "output"], rank={"output": 3}))
    assert res.ranks == {"output": 3} and m.spec.decoder_rank == 3 and m.spec.embed_size == 16  # input untouched


def test_config_errors():
    with pytest.raises(ValidationError, match="rank"):
        LowRank(rank=0)
    with pytest.raises(ValidationError, match="rank"):
        LowRank(rank={"input.0": 0})
    with pytest.raises(ValidationError, match="exactly one"):
        LowRank(energy=0.9, rank=4)
    with pytest.raises(ValidationError, match="exactly one"):
        ToLSTMP()
    with pytest.raises(ValidationError):
        LowRank(energy=1.5)


@pytest.mark.parametrize("call, match", [
    (lambda m: to_lstmp_(m, ToLSTMP(proj_size=4)), "GRU.*proj_size"),
    (lambda m: lowrank_(m, LowRank(targets=["recurrent"], energy=0.9)), "GRU.*targets \\[input, output\\]"),
])
def test_gru_has_no_projection(call, match):
    m = make("gru")
    ref = copy.deepcopy(m)
    with pytest.raises(ValueError, match=match):
        call(m)
    assert _same(m, ref)


@pytest.mark.parametrize("cfg, match", [
    (LowRank(targets=["input", "output"], max_params=100), "max_params 100 cannot be met"),
    (LowRank(rank={"input.7": 3}), "sites"),
    (LowRank(targets=["input"], rank=2, layers=(5,)), "layers \\[5\\] do not exist"),
])
def test_bad_requests_fail_clearly_and_change_nothing(cfg, match):
    m = make()
    ref = copy.deepcopy(m)
    with pytest.raises(ValueError, match=match):
        lowrank_(m, cfg)
    assert _same(m, ref)


def test_proj_size_must_fit_below_hidden_size():
    m = make(hidden=(12, 10))
    ref = copy.deepcopy(m)
    with pytest.raises(ValueError, match="below its hidden_size 10"):
        to_lstmp_(m, ToLSTMP(proj_size=(4, 10)))
    with pytest.raises(ValueError, match="2 sizes for 1 layers"):
        to_lstmp_(m, ToLSTMP(proj_size=(4, 5), layers=(0,)))
    assert _same(m, ref)


def test_a_failure_half_way_restores_the_model(monkeypatch):
    m = make(hidden=(12, 10))
    ref = copy.deepcopy(m)
    calls = []
    real = dict(lowrank_api.APPLY)

    def fail_second(kind):
        def apply(*a):
            calls.append(kind)
            if len(calls) == 2:
                raise RuntimeError("boom")
            return real[kind](*a)
        return apply

    monkeypatch.setattr(lowrank_api, "APPLY", {k: fail_second(k) for k in real})
    with pytest.raises(RuntimeError, match="boom"):
        lowrank_(m, LowRank(targets=["input", "output"], rank=3))
    assert len(calls) == 2 and _same(m, ref)
    x = inputs(m)
    torch.testing.assert_close(out(m, x), out(ref, x))


def test_not_a_sequence_model():
    with pytest.raises(TypeError, match="SequenceModel"):
        lowrank_(torch.nn.LSTM(4, 8), LowRank(rank=2))


def test_data_aware_svd_keeps_the_outputs_better():
    """Weighted by the inputs the head sees, rank r loses less of the head's outputs than the plain SVD."""
    m = make(hidden=(24,), embed=16)
    x = inputs(m, T=30, B=4)
    from rnnslim.lowrank.calibrate import input_grams
    from rnnslim.tasks.base import Batch

    batches = [Batch(x, x)]
    g = input_grams(m, batches)
    assert g["decoder.weight"].shape == (24, 24) and g["embedding.weight"].sum() == x.numel()
    errs = {}
    for n in (0, 1):
        m2 = copy.deepcopy(m)
        lowrank_(m2, LowRank(targets=["output"], rank=2, calibration_batches=n), calibration=batches if n else None)
        errs[n] = float((out(m2, x) - out(m, x)).norm())
    assert errs[1] < 0.9 * errs[0]
    with pytest.raises(ValueError, match="needs calibration data"):
        lowrank_(m, LowRank(targets=["output"], rank=2, calibration_batches=2))
