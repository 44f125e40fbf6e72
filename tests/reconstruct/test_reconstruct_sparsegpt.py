"""Second-order one-shot pruning: exact sparsity, closer to the dense model than magnitude
pruning, user modules, atomic on failure, and better on a trained reference model."""

import copy

import pytest
import torch
from reconstruct_helpers import batches, logits_error, small_model
from torch import nn

from rnnslim.prune.unstructured import UnstructuredPruning, prune_unstructured_
from rnnslim.reconstruct import OBSPruning, prune_obs_
from rnnslim.reconstruct import sequential as seq

TARGETS = ("input", "recurrent", "output")


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
def test_sparsity_and_reconstruction(cell):
    dense, data = small_model(cell), batches(8)
    m = copy.deepcopy(dense)
    res = prune_obs_(m, OBSPruning(sparsity=0.6, targets=TARGETS, calibration_batches=8), data)
    for name, r in res.report["tensors"].items():
        assert abs(r["sparsity"] - 0.6) < 0.02, name
        assert int((m.get_parameter(name)[~res.masks[name]] != 0).sum()) == 0
    mag = copy.deepcopy(dense)
    prune_unstructured_(mag, UnstructuredPruning(sparsity=0.6, targets=TARGETS))
    assert logits_error(m, dense, data) < 0.7 * logits_error(mag, dense, data)


def test_nm_and_block_patterns():
    m = small_model()
    res = prune_obs_(m, OBSPruning(pattern="nm", n=2, m=4, calibration_batches=4), batches(4))
    w = m.get_parameter("rnn.layers.0.weight_hh_l0")  # (96, 24): 6 groups of 4 per row
    assert int((w.view(96, 6, 4) != 0).sum(-1).max()) <= 2
    m = small_model()
    res = prune_obs_(m, OBSPruning(pattern="block", sparsity=0.5, block_rows=4, block_cols=4, calibration_batches=4),
                     batches(4))
    tiles = res.masks["rnn.layers.0.weight_ih_l0"].view(24, 4, 3, 4).float().mean((1, 3))  # (96, 12) in 4x4 tiles
    assert set(tiles.unique().tolist()) <= {0.0, 1.0}


def test_global_scope_sets_per_tensor_sparsities():
    m = small_model()
    res = prune_obs_(m, OBSPruning(sparsity=0.5, scope="global", calibration_batches=4), batches(4))
    assert abs(res.report["total"]["sparsity"] - 0.5) < 0.03
    assert len({round(r["sparsity"], 2) for r in res.report["tensors"].values()}) > 1


def test_user_module_multilayer_bidirectional():
    class Tagger(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(17, 8)
            self.gru = nn.GRU(8, 12, num_layers=2, bidirectional=True)
            self.out = nn.Linear(24, 5)

        def forward(self, x):
            return self.out(self.gru(self.emb(x))[0])

    m = Tagger().eval()
    dense = copy.deepcopy(m)
    res = prune_obs_(m, OBSPruning(sparsity=0.5, targets=TARGETS, calibration_batches=4), batches(4))
    assert "gru.weight_hh_l1_reverse" in res.masks and "out.weight" in res.masks
    x = batches(1)[0].inputs
    assert m(x).shape == dense(x).shape


def test_failure_leaves_the_model_unchanged(monkeypatch):
    m = small_model()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    calls = []

    def failing(*a, **k):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("boom")
        return real(*a, **k)

    real = seq.obs_walk
    monkeypatch.setattr(seq, "obs_walk", failing)
    with pytest.raises(RuntimeError, match="boom"):
        prune_obs_(m, OBSPruning(sparsity=0.5, calibration_batches=2), batches(2))
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())


def test_embedding_targets_are_refused():
    with pytest.raises(ValueError, match="embeddings"):
        OBSPruning(targets=("embedding",))


def test_reference_lstm_beats_the_best_score_only_criterion(shared_models, shakespeare):
    from rnnslim.io.format import load_model
    from rnnslim.tasks import task_for_model

    base = load_model(shared_models / "charlstm-256x2.json")
    task = task_for_model(base, shakespeare)
    obs, fisher = copy.deepcopy(base), copy.deepcopy(base)
    prune_obs_(obs, OBSPruning(sparsity=0.7, calibration_batches=6), task)
    prune_unstructured_(fisher, UnstructuredPruning(sparsity=0.7, criterion="fisher"), calibration=task)
    lo = task.evaluate(obs, "valid", max_steps=3000)["loss_nats"]
    lf = task.evaluate(fisher, "valid", max_steps=3000)["loss_nats"]
    assert lo < lf - 0.05


def test_global_threshold_caps_a_tensor_and_moves_the_rest_to_the_others():
    from rnnslim.reconstruct.sparsegpt import capped_threshold_sparsities

    g = torch.Generator().manual_seed(0)
    sal = {"tiny": torch.rand(100, generator=g) * 1e-6, "big": torch.rand(300, generator=g)}
    # uncapped: one threshold; "tiny" (all below every "big" score) is emptied first
    free = capped_threshold_sparsities(sal, 0.5, 1.0)
    assert free["tiny"] == 1.0 and abs(free["big"] - 100 / 300) < 1e-9
    capped = capped_threshold_sparsities(sal, 0.5, 0.9)
    assert capped["tiny"] == 0.9
    assert abs(90 + capped["big"] * 300 - 200) <= 1  # the total is still half of the 400 scores


def test_global_threshold_without_a_binding_cap_is_the_kth_value_rule():
    from rnnslim.reconstruct.sparsegpt import capped_threshold_sparsities

    g = torch.Generator().manual_seed(1)
    sal = {"a": torch.rand(50, 8, generator=g), "b": torch.rand(70, 4, generator=g) * 2}
    flat = torch.cat([s.reshape(-1) for s in sal.values()])
    t = torch.kthvalue(flat, round(0.6 * flat.numel())).values
    want = {n: float((s <= t).float().mean()) for n, s in sal.items()}
    got = capped_threshold_sparsities(sal, 0.6, 1.0)
    assert got == pytest.approx(want)
