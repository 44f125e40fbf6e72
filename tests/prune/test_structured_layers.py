"""Removing whole recurrent layers: exact pass-through when sizes match, least-squares re-fit otherwise."""

import copy

import pytest
import torch
from torch import nn

from rnnslim.graph import CouplingError
from rnnslim.models.sequence import SequenceModel
from rnnslim.prune.structured import keep_units_
from rnnslim.prune.structured.layers import remove_layers_
from rnnslim.tasks.charlm import CharLMTask

TEXT = "the quick brown fox jumps over the lazy dog; " * 60


@pytest.fixture(scope="module")
def task():
    return CharLMTask(text=TEXT)


def test_remove_middle_layer_of_equal_width_stack(task):
    model = SequenceModel(task.model_spec("lstm", hidden_size=8, num_layers=3)).eval()
    ref = copy.deepcopy(model)
    out = remove_layers_(model, [1])
    assert out["removed"] == ["rnn.layers.1"] and model.spec.layers == ref.spec.layers[:2]
    x = torch.randint(0, len(task.vocab), (5, 2))
    with torch.no_grad():  # the same model with layer 1 skipped, composed by hand
        h, _ = ref.rnn.layers[0](ref.embedding(x))
        h, _ = ref.rnn.layers[2](h)
        assert torch.equal(model(x)[0], ref.decoder(h))
    assert model.history[-1] == {"op": "remove_layers", "layers": ["rnn.layers.1"], "refit": "none"}


def test_size_mismatch_needs_a_refit_and_lstsq_fits_the_consumer(task):
    model = SequenceModel(task.model_spec("gru", hidden_size=12, num_layers=3)).eval()
    keep_units_(model, {"rnn.layers.1": list(range(7))})  # layer 1: 12 -> 7 units, consumer reads 7
    with pytest.raises(CouplingError, match="refit='lstsq'"):
        remove_layers_(copy.deepcopy(model), [1])
    ref = copy.deepcopy(model)
    remove_layers_(model, [1], refit="lstsq", calibration=task, n_batches=4)
    assert model.rnn.layers[1].input_size == 12 and model.rnn.num_layers == 2
    # the fitted affine map beats dropping the layer's contribution (its output replaced by its mean)
    batch = task.calibration_batches(1, seed=5)[0]
    with torch.no_grad():
        y_ref = ref(batch.inputs)[0]
        err_fit = (model(batch.inputs)[0] - y_ref).pow(2).mean()
        zero = copy.deepcopy(model)
        zero.rnn.layers[1].weight_ih_l0.zero_()
        err_zero = (zero(batch.inputs)[0] - y_ref).pow(2).mean()
    assert err_fit < err_zero


def test_remove_a_layer_of_a_user_multi_layer_torch_module():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = nn.GRU(6, 6, num_layers=3, batch_first=True)
            self.fc = nn.Linear(6, 2)

        def forward(self, x):
            return self.fc(self.gru(x)[0][:, -1])

    model = M().eval()
    ref = copy.deepcopy(model)
    remove_layers_(model, ["gru[0]"])  # input size 6 == output size 6, so even layer 0 may go
    assert model.gru.num_layers == 2
    x = torch.randn(2, 5, 6)
    with torch.no_grad():
        single = [nn.GRU(6, 6, batch_first=True) for _ in range(2)]
        for dst, k in zip(single, (1, 2)):
            for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(dst, n + "_l0").copy_(getattr(ref.gru, f"{n}_l{k}"))
        y = ref.fc(single[1](single[0](x)[0])[0][:, -1])
        assert (model(x) - y).abs().max() <= 1e-6
    with pytest.raises(CouplingError, match="refit"):
        remove_layers_(model, ["gru[1]"], refit="lstsq", calibration=[x])


def test_removing_a_torch_layer_updates_the_users_nlayers_and_inputs_follow(tmp_path):
    """The PyTorch examples word LM reads self.nlayers in init_hidden: after removing rnn[1] it is 1
    (recorded), a callable example_inputs builds a one-layer state, and the examples' loop runs,
    also through prune_(LayerRemoval) and save_edited / load_edited."""

    from examples_lm import ExamplesWordLM, corpus, evaluate

    from rnnslim.prune import LayerRemoval, prune_
    from rnnslim.prune.structured.history import load_edited, save_edited

    torch.manual_seed(0)
    m, x, data = ExamplesWordLM(), torch.randint(0, 30, (5, 2)), corpus()
    inputs = lambda mod: (x, mod.init_hidden(2))  # noqa: E731
    out = remove_layers_(m, ["rnn[1]"], example_inputs=inputs)
    assert m.rnn.num_layers == 1 and m.nlayers == 1 and m.nhid == 12
    assert out["warnings"] == ["updated ExamplesWordLM.nlayers 2 -> 1"]
    assert m.history[-1]["attributes"] == {"ExamplesWordLM.nlayers": [2, 1]}
    assert m.init_hidden(4)[0].shape == (1, 4, 12)
    loss = evaluate(m, data)
    save_edited(m, tmp_path / "short")
    back = load_edited(ExamplesWordLM(), tmp_path / "short", example_inputs=inputs)
    assert back.nlayers == 1 and evaluate(back, data) == pytest.approx(loss, abs=1e-6)
    torch.manual_seed(0)
    verb = ExamplesWordLM()
    res = prune_(verb, LayerRemoval(layers=["rnn[0]"]), example_inputs=inputs)
    assert verb.nlayers == 1 and "updated ExamplesWordLM.nlayers 2 -> 1" in res.warnings
