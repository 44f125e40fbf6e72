"""Masks hold while nn.LSTM / nn.GRU train: pruned weights stay exactly zero, kept ones learn."""

import pytest
import torch
from torch import nn

from rnnslim.io.format import load_model, save_model
from rnnslim.models.sequence import SequenceModel
from rnnslim.prune.masks import (
    apply_masks_,
    mark_sparse_,
    mask_hook,
    masks_from_model,
    sparsity_report,
)
from rnnslim.prune.targets import target_names
from rnnslim.tasks.charlm import CharLMTask
from rnnslim.train import TrainConfig, TrainHooks, train

TEXT = ("the quick brown fox jumps over the lazy dog. " * 30 + "pack my box with five dozen liquor jugs! " * 30)
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _random_masks(model, names, density=0.4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {n: torch.rand(model.get_parameter(n).shape, generator=g) < density for n in names}


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_masks_hold_through_train_with_adamw(cell):
    task = CharLMTask(text=TEXT)
    model = SequenceModel(task.model_spec(cell=cell, hidden_size=16, num_layers=2, dropout=0.1))
    names = target_names(model)  # all weight matrices, embedding and decoder included
    masks = _random_masks(model, names)
    apply_masks_(model, masks)
    before = {n: model.get_parameter(n).detach().clone() for n in names}
    seen_steps = []

    def check(m, step):  # runs after the mask hook, i.e. after every optimizer step
        for n in names:
            assert torch.all(m.get_parameter(n)[~masks[n]] == 0), f"{n} regrew at step {step}"
        seen_steps.append(step)

    cfg = TrainConfig(max_steps=12, batch_size=4, seq_len=16, lr=1e-2, weight_decay=0.1, eval_max_steps=50)
    train(model, task, cfg, hooks=TrainHooks(after_step=[mask_hook(masks), check]), progress=False)
    assert seen_steps == list(range(1, 13))
    for n in names:
        p = model.get_parameter(n).detach()
        assert torch.all(p[~masks[n]] == 0)
        changed = (p != before[n])[masks[n]].float().mean()
        assert changed > 0.9, f"{n}: only {changed:.0%} of the kept weights learned"


def test_without_the_hook_adamw_regrows_pruned_weights():
    """The property above is not vacuous: plain AdamW moves zeroed weights."""
    task = CharLMTask(text=TEXT)
    model = SequenceModel(task.model_spec(cell="lstm", hidden_size=16, num_layers=1))
    names = target_names(model)
    masks = _random_masks(model, names)
    apply_masks_(model, masks)
    train(model, task, TrainConfig(max_steps=3, batch_size=4, seq_len=16, eval_max_steps=20), progress=False)
    assert any(torch.any(model.get_parameter(n)[~masks[n]] != 0) for n in names)


@pytest.mark.parametrize("device", DEVICES)
def test_hook_on_a_multilayer_torch_lstm(device):
    torch.manual_seed(0)
    lstm = nn.LSTM(6, 8, num_layers=2, bidirectional=True, dropout=0.2).to(device)
    names = [n for n, _ in lstm.named_parameters() if n.startswith("weight")]
    masks = _random_masks(lstm, names, density=0.3)
    hook = mask_hook(masks, lstm)  # attached before the first step
    before = {n: lstm.get_parameter(n).detach().clone() for n in names}
    opt = torch.optim.AdamW(lstm.parameters(), lr=1e-2, weight_decay=0.1)
    x = torch.randn(10, 3, 6, device=device)
    for step in range(1, 6):
        out, _ = lstm(x)
        opt.zero_grad()
        out.pow(2).mean().backward()
        for n in names:  # the gradient hook keeps pruned weights out of clipping and AdamW's moments
            assert torch.all(lstm.get_parameter(n).grad[~masks[n].to(device)] == 0)
        opt.step()
        hook(lstm, step)
    for n in names:
        p, m = lstm.get_parameter(n).detach(), masks[n].to(device)
        assert torch.all(p[~m] == 0)
        assert (p != before[n])[m].float().mean() > 0.9
    # the module computes with the masked weights (flat weights are not stale)
    fresh = nn.LSTM(6, 8, num_layers=2, bidirectional=True).to(device)
    fresh.load_state_dict(lstm.state_dict())
    lstm.eval()
    with torch.no_grad():
        torch.testing.assert_close(lstm(x)[0], fresh(x)[0], rtol=0, atol=0)
    hook.remove()


def test_update_and_remove():
    lstm = nn.GRU(4, 5)
    name = "weight_hh_l0"
    m1 = torch.ones(15, 5, dtype=torch.bool)
    m1[0] = False
    hook = mask_hook({name: m1}, lstm)
    m2 = m1.clone()
    m2[1] = False
    hook.update({name: m2})
    lstm(torch.randn(3, 2, 4))[0].sum().backward()
    assert torch.all(lstm.weight_hh_l0.grad[:2] == 0) and torch.any(lstm.weight_hh_l0.grad[2:] != 0)
    hook.remove()
    lstm.zero_grad()
    lstm(torch.randn(3, 2, 4))[0].sum().backward()
    assert torch.any(lstm.weight_hh_l0.grad[:2] != 0)


def test_mask_errors_name_the_problem():
    lstm = nn.LSTM(4, 5)
    with pytest.raises(KeyError, match="no such parameter"):
        apply_masks_(lstm, {"weight_xx": torch.ones(3, dtype=torch.bool)})
    with pytest.raises(ValueError, match="has shape"):
        apply_masks_(lstm, {"weight_hh_l0": torch.ones(3, dtype=torch.bool)})


def test_marks_survive_save_and_load(tmp_path):
    task = CharLMTask(text=TEXT)
    model = SequenceModel(task.model_spec(cell="lstm", hidden_size=32, num_layers=2))
    names = target_names(model, ["input", "recurrent"])
    masks = _random_masks(model, names, density=0.1)
    apply_masks_(model, masks)
    light = "rnn.layers.0.weight_hh_l0"  # barely pruned: bitmap would be larger than dense
    with torch.no_grad():
        model.get_parameter(light).normal_()
    stored = mark_sparse_(model, names, "sparse_bitmap")
    assert model.tensor_encodings[light] == {"encoding": "sparse_auto"} and stored[light] == "dense"
    assert all(stored[n] == "sparse_bitmap" for n in names if n != light)
    save_model(model, tmp_path / "m")
    back = load_model(tmp_path / "m")
    found = masks_from_model(back)
    assert sorted(found) == sorted(names)
    for n in names:
        assert torch.equal(found[n], model.get_parameter(n) != 0)


def test_mark_sparse_leaves_other_encodings_alone():
    lstm = nn.LSTM(4, 5)
    lstm.tensor_encodings = {"weight_ih_l0": {"encoding": "int8"},
                             "bias_ih_l0": {"encoding": "dense", "dtype": "float16"}}
    out = mark_sparse_(lstm, ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0"])
    assert out["weight_ih_l0"] == "kept int8" and lstm.tensor_encodings["weight_ih_l0"] == {"encoding": "int8"}
    assert out["bias_ih_l0"].startswith("kept dense") and lstm.tensor_encodings["bias_ih_l0"]["dtype"] == "float16"
    assert lstm.tensor_encodings["weight_hh_l0"] == {"encoding": "sparse_auto"}


def test_sparsity_report_counts():
    lstm = nn.LSTM(4, 5)
    with torch.no_grad():
        lstm.weight_hh_l0[:10] = 0
    rep = sparsity_report(lstm, ["weight_hh_l0"])
    assert rep["tensors"]["weight_hh_l0"] == {"shape": [20, 5], "numel": 100, "nonzero": 50, "sparsity": 0.5}
    assert rep["model"]["params"] == sum(p.numel() for p in lstm.parameters())
