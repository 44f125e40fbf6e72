"""Unstructured pruning: exact per-tensor sparsity (layer-wise), exact total (global), monotone."""

import pytest
import torch

from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, SequenceModel
from rnnslim.prune.dispatch import prune_
from rnnslim.prune.targets import TargetKind
from rnnslim.prune.unstructured import (
    Scope,
    UnstructuredPruning,
    global_masks,
    layer_masks,
    prune_unstructured_,
)
from rnnslim.tasks.charlm import CharLMTask

TEXT = ("the quick brown fox jumps over the lazy dog. " * 30 + "pack my box with five dozen liquor jugs! " * 30)


def _model(cell="lstm"):
    spec = ModelSpec(cell=cell, input_kind=InputKind.EMBEDDING, input_size=20, embed_size=10,
                     layers=[LayerShape(hidden_size=12), LayerShape(hidden_size=9)], output_size=20)
    return SequenceModel(spec)


@pytest.mark.parametrize("sparsity", [0.0, 0.33, 0.9])
def test_layerwise_hits_the_sparsity_in_every_tensor(sparsity):
    m = _model()
    biases = {n: p.detach().clone() for n, p in m.named_parameters() if "bias" in n}
    orig = {n: p.detach().clone() for n, p in m.named_parameters()}
    res = prune_unstructured_(m, UnstructuredPruning(sparsity=sparsity))
    assert set(res.report["tensors"]) == {f"rnn.layers.{k}.weight_{t}_l0" for k in (0, 1) for t in ("ih", "hh")}
    for name, r in res.report["tensors"].items():
        assert r["numel"] - r["nonzero"] == round(sparsity * r["numel"])
        p = m.get_parameter(name).detach()
        assert torch.equal(p != 0, res.masks[name])
        if sparsity:  # magnitude: every pruned weight is no larger than every kept one
            w = orig[name]
            assert w[~res.masks[name]].abs().max() <= w[res.masks[name]].abs().min()
    assert all(torch.equal(p, m.get_parameter(n)) for n, p in biases.items())
    assert m.embedding.weight.ne(0).all() and m.decoder.weight.ne(0).all()


def test_magnitude_prunes_the_smallest():
    w = torch.tensor([[0.1, -3.0, 0.5, 2.0], [-0.2, 0.05, 1.0, -0.7]])
    mask = layer_masks({"w": w.abs()}, 0.5)["w"]
    assert mask.tolist() == [[False, True, False, True], [False, False, True, True]]


def test_global_uses_one_threshold():
    scores = {"a": torch.arange(10.0), "b": torch.arange(10.0) + 5}  # b's weights are all larger
    masks = global_masks(scores, 0.5)
    assert masks["a"].sum() == 2 and masks["b"].sum() == 8  # the 10 smallest of 20 are pruned
    m = _model()
    res = prune_unstructured_(m, UnstructuredPruning(sparsity=0.7, scope=Scope.GLOBAL,
                                                     targets=(TargetKind.INPUT, TargetKind.RECURRENT, TargetKind.OUTPUT)))
    tot = res.report["total"]
    assert tot["numel"] - tot["nonzero"] == round(0.7 * tot["numel"])
    per = [r["sparsity"] for r in res.report["tensors"].values()]
    assert max(per) - min(per) > 0.01  # tensors end up with different sparsities
    thr = max(m.get_parameter(n).detach()[~mk].abs().max() for n, mk in res.masks.items())
    assert all(m.get_parameter(n).detach()[mk].abs().min() >= thr for n, mk in res.masks.items())


def test_existing_masks_never_regrow():
    scores = {"w": torch.arange(12.0).reshape(3, 4)}
    old = {"w": torch.ones(3, 4, dtype=torch.bool)}
    old["w"][2, 3] = False  # the highest score was pruned before
    new = layer_masks(scores, 0.25, old)["w"]
    assert not new[2, 3] and (~new).sum() == 3
    assert (~layer_masks(scores, 0.0, old)["w"]).sum() == 1  # a lower target keeps the old zeros
    assert not global_masks(scores, 0.25, old)["w"][2, 3]


@pytest.mark.parametrize("criterion", ["taylor", "fisher", "activation"])
def test_data_driven_criteria_prune_through_a_task(criterion):
    task = CharLMTask(text=TEXT)
    m = SequenceModel(task.model_spec(cell="gru", hidden_size=10, num_layers=2))
    cfg = UnstructuredPruning(sparsity=0.5, criterion=criterion, calibration_batches=2, layers=(1,))
    res = prune_(m, cfg, task)
    assert set(res.report["tensors"]) == {"rnn.layers.1.weight_ih_l0", "rnn.layers.1.weight_hh_l0"}
    assert all(r["sparsity"] == 0.5 for r in res.report["tensors"].values())
    assert m.rnn.layers[0].weight_hh_l0.ne(0).all()
    assert res.report["method"]["criterion"] == criterion


def test_config_validation_and_errors():
    with pytest.raises(ValueError):
        UnstructuredPruning(sparsity=1.0)
    with pytest.raises(ValueError):
        UnstructuredPruning(sparsity=0.5, extra_field=1)
    with pytest.raises(ValueError, match="needs calibration data"):
        prune_unstructured_(_model(), UnstructuredPruning(sparsity=0.5, criterion="taylor"))
    with pytest.raises(ValueError, match="no tensors of kinds"):
        prune_unstructured_(_model(), UnstructuredPruning(sparsity=0.5, targets=("projection",)))
    with pytest.raises(TypeError, match="no pruning method"):
        prune_(_model(), object())
