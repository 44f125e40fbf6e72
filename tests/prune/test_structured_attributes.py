"""After prune_units_ the user's own code keeps working: size attributes it reads (`nhid`) follow
the cut, and example inputs given as a callable are built again for the new sizes."""

from __future__ import annotations

import pytest
import torch
from examples_lm import ExamplesWordLM, corpus, evaluate, train_briefly
from torch import nn

from rnnslim.graph.coupling import GroupKind
from rnnslim.prune import StructuredPruning, prune_units_
from rnnslim.prune.structured.attributes import SizeChange, update_size_attributes_
from rnnslim.prune.structured.history import load_edited, save_edited


@pytest.fixture(scope="module")
def trained():
    data = corpus()
    torch.manual_seed(0)
    return train_briefly(ExamplesWordLM("LSTM"), data), data


def _copy(m: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(m)


def test_a_state_built_for_the_old_size_fails_the_check_and_says_to_pass_a_callable(trained):
    m = _copy(trained[0])
    x = torch.randint(0, 30, (6, 4))
    before = {k: v.clone() for k, v in m.state_dict().items()}
    with pytest.raises(RuntimeError, match=r"pass a callable that builds them from the model: "
                                           r"example_inputs=lambda m: \(x, m.init_hidden\(b\)\)"):
        prune_units_(m, StructuredPruning(ratio=0.5), example_inputs=(x, m.init_hidden(4)))
    assert m.nhid == 12 and m.rnn.hidden_size == 12  # all or nothing: the attribute update is undone too
    assert all(torch.equal(v, before[k]) for k, v in m.state_dict().items())


def test_callable_example_inputs_and_nhid_updated_keep_the_users_evaluation_loop_running(trained, tmp_path):
    m, data = _copy(trained[0]), trained[1]
    x = torch.randint(0, 30, (6, 4))
    seen = []

    def inputs(model):
        seen.append(model.rnn.hidden_size)
        return x, model.init_hidden(4)

    res = prune_units_(m, StructuredPruning(ratio=0.5), example_inputs=inputs)
    assert seen == [12, 6]  # traced with the old sizes, checked with the new ones
    assert m.rnn.hidden_size == 6 and m.nhid == 6 and m.nlayers == 2
    assert res.updated_attributes == {"ExamplesWordLM.nhid": [12, 6]}
    assert res.warnings == ["updated ExamplesWordLM.nhid 12 -> 6"]
    assert m.history[-1]["attributes"] == {"ExamplesWordLM.nhid": [12, 6]}
    h = m.init_hidden(4)
    assert h[0].shape == (2, 4, 6)
    loss = evaluate(m, data)  # the examples' own loop: init_hidden, forward, state carried
    assert loss == pytest.approx(evaluate(m, data)) and loss < 10
    save_edited(m, tmp_path / "pruned")
    back = load_edited(ExamplesWordLM("LSTM"), tmp_path / "pruned", example_inputs=inputs)
    assert back.nhid == 6 and evaluate(back, data) == pytest.approx(loss, abs=1e-6)


def test_layers_of_different_new_sizes_leave_the_attribute_and_say_why(trained):
    m = _copy(trained[0])
    x = torch.randint(0, 30, (6, 4))
    res = prune_units_(m, StructuredPruning(per_layer={0: 0.5, 1: 0.25}), example_inputs=(x, None))
    assert m.nhid == 12 and res.updated_attributes == {}
    assert res.stale_attributes == ["ExamplesWordLM.nhid = 12 names an old size (rnn[0] 12 -> 6; rnn[1] 12 -> 9: the "
                                    "layers now differ in size, one number cannot name them; build the state with "
                                    "rnnslim.recurrent.torch_contract.zero_state(model.rnn, batch) (a list, one entry "
                                    "per layer) or pass None)"]


class Holder(nn.Module):
    """Sizes on a module that does not hold the recurrent module, and one that is never read."""

    def __init__(self):
        super().__init__()
        self.lm = nn.Module()
        self.lm.rnn = nn.LSTM(4, 5)  # as after a cut from 8 to 5 units
        self.side = nn.Module()
        self.nhid = 8  # assigned, never read by Holder's methods

    def forward(self, x):
        return self.lm.rnn(x)[0]


class SideCar(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden_size = 8

    def forward(self, x):
        return x[..., : self.hidden_size]


def test_only_attributes_read_as_that_size_on_an_owning_module_are_updated():
    m = Holder()
    m.side = SideCar()
    changes = [SizeChange("lm.rnn[0]", GroupKind.HIDDEN, "lm.rnn", 8, 5)]
    updated, stale = update_size_attributes_(m, changes)
    assert updated == {} and m.nhid == 8 and m.side.hidden_size == 8
    assert stale == ["Holder.nhid = 8 names an old size (lm.rnn[0] 8 -> 5)",
                     "SideCar.side.hidden_size = 8 names an old size (lm.rnn[0] 8 -> 5)"]
    owner = SideCar()  # read in forward, named as a hidden size, holds the module: updated
    owner.rnn = nn.LSTM(4, 5)
    updated, stale = update_size_attributes_(owner, [SizeChange("rnn[0]", GroupKind.HIDDEN, "rnn", 8, 5)])
    assert updated == {"SideCar.hidden_size": [8, 5]} and owner.hidden_size == 5 and stale == []


class TwoLSTMs(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc, self.dec = nn.LSTM(4, 5), nn.LSTM(8, 8)
        self.nhid = 8

    def forward(self, x):
        return self.dec(x.new_zeros(*x.shape[:2], self.nhid))[0]


def test_a_size_another_recurrent_module_still_has_is_left_and_named():
    m = TwoLSTMs()  # as after a cut of the encoder from 8 to 5 units; the decoder keeps 8
    updated, stale = update_size_attributes_(m, [SizeChange("enc[0]", GroupKind.HIDDEN, "enc", 8, 5)])
    assert updated == {} and m.nhid == 8
    assert stale == ["TwoLSTMs.nhid = 8 names an old size (enc[0] 8 -> 5: dec still has 8, one number cannot name "
                     "both)"]
    m.dec = nn.LSTM(8, 5)  # both cut to 5: nhid follows
    updated, _ = update_size_attributes_(m, [SizeChange("enc[0]", GroupKind.HIDDEN, "enc", 8, 5),
                                             SizeChange("dec[0]", GroupKind.HIDDEN, "dec", 8, 5)])
    assert updated == {"TwoLSTMs.nhid": [8, 5]} and m.nhid == 5


class Sizes(nn.Module):
    """Every size a user keeps, read in forward (the values are the sizes after a cut)."""

    def __init__(self):
        super().__init__()
        self.emb, self.rnn = nn.Embedding(10, 3), nn.LSTM(3, 5, 1, proj_size=2)
        self.ninp, self.nhid, self.proj, self.nlayers, self.vocab = 6, 8, 4, 2, 8

    def forward(self, x):
        return self.ninp, self.nhid, self.proj, self.nlayers, self.vocab


def test_each_kind_of_size_updates_the_attribute_named_for_it():
    m = Sizes()
    changes = [SizeChange("emb", GroupKind.EMBED, "emb", 6, 3), SizeChange("rnn[0]", GroupKind.HIDDEN, "rnn", 8, 5),
               SizeChange("rnn:proj", GroupKind.PROJ, "rnn", 4, 2), SizeChange("rnn", "layers", "rnn", 2, 1)]
    updated, stale = update_size_attributes_(m, changes)
    assert updated == {"Sizes.ninp": [6, 3], "Sizes.nhid": [8, 5], "Sizes.proj": [4, 2], "Sizes.nlayers": [2, 1]}
    assert stale == ["Sizes.vocab = 8 names an old size (rnn[0] 8 -> 5)"] and m.vocab == 8
