"""Group lasso (intrinsic sparse structures): the penalty is the sum of unit group norms,
fine-tuning with it drives unit norms down, dead units are removed."""

import copy

import torch

from rnnslim.models.sequence import SequenceModel
from rnnslim.prune.group_lasso import GroupLasso, group_norms, remove_dead_units_
from rnnslim.prune.structured import unit_groups
from rnnslim.tasks.charlm import CharLMTask
from rnnslim.train import TrainConfig, TrainHooks, train

TEXT = "she sells sea shells by the sea shore, and the shells she sells are sea shells. " * 30


def test_penalty_is_the_sum_of_unit_group_norms_each_weight_once():
    task = CharLMTask(text=TEXT)
    model = SequenceModel(task.model_spec("gru", hidden_size=5, num_layers=2))
    lasso = GroupLasso(model, lam=0.1, layers=[0])
    layer, nxt = model.rnn.layers[0], model.rnn.layers[1]
    k = 3
    rows = [k, 5 + k, 10 + k]
    w = torch.cat([layer.weight_ih_l0[rows].flatten(), layer.weight_hh_l0[rows].flatten(),
                   layer.bias_ih_l0[rows], layer.bias_hh_l0[rows],
                   layer.weight_hh_l0[[r for r in range(15) if r not in rows], k], nxt.weight_ih_l0[:, k]])
    norms = group_norms(model, lasso.groups)["rnn.layers.0"].detach()
    assert abs(float(norms[k]) - float(w.detach().norm())) < 1e-5
    assert abs(float(lasso(model).detach()) - 0.1 * float(norms.sum())) < 1e-5
    lasso(model).backward()  # differentiable: every coupled weight gets a gradient
    assert layer.weight_ih_l0.grad is not None and nxt.weight_ih_l0.grad[:, k].abs().sum() > 0


def _train(model, task, lam):
    # SGD as in Wen et al.: Adam's per-weight normalisation would mostly cancel the penalty's pull
    hooks = TrainHooks(extra_loss=[GroupLasso(model, lam)] if lam else [])
    cfg = TrainConfig(epochs=1, batch_size=8, seq_len=16, lr=1.0, optimizer="sgd", momentum=0.9,  # 17 steps
                      schedule="constant", eval_max_steps=20)
    train(model, task, cfg, hooks=hooks, progress=False)
    return model


def test_group_lasso_drives_unit_norms_down_and_dead_units_go():
    task = CharLMTask(text=TEXT)
    torch.manual_seed(0)
    base = SequenceModel(task.model_spec("lstm", hidden_size=12, num_layers=1))
    plain = _train(copy.deepcopy(base), task, 0.0)
    lasso = _train(copy.deepcopy(base), task, 0.03)
    groups = [g for g in unit_groups(plain) if g.name == "rnn.layers.0"]
    n_plain = group_norms(plain, groups)["rnn.layers.0"].detach()
    n_lasso = group_norms(lasso, groups)["rnn.layers.0"].detach()
    assert n_lasso.sum() < 0.75 * n_plain.sum()
    assert (n_lasso / n_plain).min() < 0.5  # some units are pushed much further than the average


def test_remove_dead_units_removes_exactly_the_zeroed_units():
    task = CharLMTask(text=TEXT)
    model = SequenceModel(task.model_spec("gru", hidden_size=6, num_layers=2)).eval()
    groups = {g.name: g for g in unit_groups(model)}
    params = dict(model.named_parameters())
    with torch.no_grad():  # kill units 1 and 4 of layer 0 in every coupled tensor
        g = groups["rnn.layers.0"]
        for s in g.slices:
            params[s.param].index_fill_(s.dim, g.positions(s, torch.tensor([1, 4])), 0.0)
    ref = copy.deepcopy(model)
    result = remove_dead_units_(model, threshold=1e-6)
    assert result.keeps == {"rnn.layers.0": [0, 2, 3, 5]}
    x = torch.randint(0, len(task.vocab), (6, 2))
    with torch.no_grad():
        assert (model(x)[0] - ref(x)[0]).abs().max() <= 1e-6
