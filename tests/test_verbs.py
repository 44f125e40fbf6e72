"""rnnslim.verbs: the one dispatch (registry keyed by config class), the EditResult core it fills
(changed module paths, stored bytes, warnings), and the training / data-driven configs that
reach their methods through prune_ / quantize_ / factorize_."""

from __future__ import annotations

import warnings

import pytest
import torch
from pydantic import BaseModel
from torch import nn

import rnnslim
from rnnslim.results import EditResult
from rnnslim.tasks.charlm import CharLMTask
from rnnslim.verbs import Family, changed_paths, register, run

TEXT = "she sells sea shells by the sea shore, and the shells she sells are sea shells. " * 12


class _Halve(BaseModel):  # a config of a family method defined here, as a plugin would
    replace: bool = False
    warn: str | None = None


class _Broken(BaseModel):
    pass


@register(Family.FACTORIZE, _Halve)
def _halve(model: nn.Module, cfg: _Halve, scale: float = 0.5) -> EditResult:
    if cfg.warn:
        warnings.warn(cfg.warn)
    if cfg.replace:
        model.head = nn.Linear(model.head.in_features, 2, bias=False)
    with torch.no_grad():
        model.body[0].weight.mul_(scale)
    return EditResult(warnings=["own note"])


@register(Family.PRUNE, _Broken)
def _broken(model: nn.Module, cfg: _Broken):
    return model


def _net() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Module()
    net.body = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 8))
    net.head = nn.Linear(8, 3)
    return net


def test_a_registered_config_runs_its_method_and_the_core_is_filled():
    net = _net()
    w = net.body[0].weight.detach().clone()
    res = rnnslim.factorize_(net, _Halve(), scale=0.25)
    assert torch.allclose(net.body[0].weight, 0.25 * w)
    assert (res.family, res.method, res.changed, res.warnings) == ("factorize", "_Halve", ["body.0"], ["own note"])
    assert res.bytes_before == res.bytes_after == 4 * sum(p.numel() for p in net.parameters())


def test_changed_lists_a_replaced_module_once_and_warnings_are_kept_and_shown():
    net = _net()
    with pytest.warns(UserWarning, match="careful"):
        res = run(Family.FACTORIZE, net, _Halve(replace=True, warn="careful"))
    assert res.changed == ["body.0", "head"] and res.warnings == ["own note", "careful"]
    assert res.bytes_after == res.bytes_before - 4 * (3 * 8 + 3 - 2 * 8)  # head 8x3 + bias -> 8x2


def test_changed_paths_sees_in_place_edits_added_and_removed_modules():
    net = _net()
    from rnnslim.verbs import _snapshot

    before = _snapshot(net)
    with torch.no_grad():
        net.head.bias.zero_()
    del net.body[1]
    net.extra = nn.Sequential(nn.ReLU())
    assert changed_paths(before, net) == ["body.1", "extra", "head"]
    with torch.inference_mode():  # inference tensors keep no version counter: still comparable
        net.frozen = nn.Linear(2, 2)
    before = _snapshot(net)
    net.frozen = nn.Linear(2, 2)
    assert changed_paths(before, net) == ["frozen"]


def test_inputs_are_checked_against_the_method():
    with pytest.raises(ValueError, match=r"_Halve takes no calibration \(it takes: scale\)"):
        rnnslim.factorize_(_net(), _Halve(), calibration=[1])
    with pytest.raises(TypeError, match="returned Module, not an EditResult"):
        rnnslim.prune_(_net(), _Broken())
    with pytest.raises(TypeError, match="_Halve is a factorization config: use factorize_"):
        rnnslim.prune_(_net(), _Halve())
    with pytest.raises(ValueError, match="_Halve is already applied by .*_halve"):
        register(Family.PRUNE, _Halve)(_broken)


@pytest.fixture(scope="module")
def task():
    return CharLMTask(text=TEXT)


def _lm(task, cell="lstm"):
    torch.manual_seed(0)
    return rnnslim.SequenceModel(task.model_spec(cell, hidden_size=12, num_layers=2)).eval()


def _train(steps):
    return rnnslim.TrainConfig(max_steps=steps, batch_size=4, seq_len=16, eval_max_steps=2)


def test_gradual_and_group_lasso_prune_through_prune_(task):
    m = _lm(task)
    cfg = rnnslim.GradualPruning(schedule=rnnslim.AGPSchedule(final_sparsity=0.75, end_step=2, frequency=1),
                                 train=_train(3))
    res = rnnslim.prune_(m, cfg, task=task)
    w = [p for n, p in m.rnn.named_parameters() if "weight" in n]
    assert abs(sum(int((t == 0).sum()) for t in w) / sum(t.numel() for t in w) - 0.75) < 0.02
    assert res.train.steps == 3 and res.method == "GradualPruning"
    with pytest.raises(ValueError, match="GradualPruning needs task="):
        rnnslim.prune_(_lm(task), cfg)
    m = _lm(task)
    lasso = rnnslim.GroupLassoPruning(lam=0.01, threshold=0.9, relative=True, train=_train(2))
    res = rnnslim.prune_(m, lasso, task=task)
    sizes = [s.hidden_size for s in m.spec.layers]
    assert sizes == [res.sizes.get(f"rnn.layers.{k}", (12, 12))[1] for k in range(2)] and sum(sizes) < 24
    assert res.train.steps == 2 and res.bytes_after < res.bytes_before and res.method == "GroupLassoPruning"


def test_mixed_precision_qat_and_lowrank_linears_through_their_verbs(task):
    m = _lm(task)
    res = rnnslim.quantize_(m, rnnslim.MixedPrecision(bits=(8, 4), budget_ratio=0.3, calib_batches=1, batch_size=4,
                                                      seq_len=16), calibration=task)
    assert res.plan is not None and {r.path for r in res.layers} <= set(res.changed)
    assert res.bytes_after < 0.4 * res.bytes_before
    with pytest.raises(ValueError, match="calibration=a Task"):
        rnnslim.quantize_(_lm(task), rnnslim.MixedPrecision(budget_ratio=0.5), calibration=[1])
    m = _lm(task, "gru")
    rnnslim.quantize_(m, rnnslim.QAT(weights=rnnslim.WeightOnly(bits=4, group_size=12)))
    res = rnnslim.quantize_(m, rnnslim.QAT(step="convert"))
    assert res.bytes_after < 0.35 * res.bytes_before and "rnn.layers.0" in res.changed
    net = nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 16))
    res = rnnslim.factorize_(net, rnnslim.LowRankLinears(rank=2))
    assert res.ranks == {"0": 2, "2": 2} and res.changed == ["0", "2"] and res.bytes_after < res.bytes_before
