"""A pruned architecture is re-created: SequenceModel through save_model/load_model, a
user-written model through its history (replay on a fresh instance)."""

import copy

import pytest
import torch
from torch import nn

from rnnslim.graph import CouplingError
from rnnslim.io.format import load_model, save_model
from rnnslim.models.sequence import SequenceModel
from rnnslim.prune.structured import StructuredPruning, prune_units_
from rnnslim.prune.structured.history import load_edited, replay, save_edited
from rnnslim.prune.structured.layers import remove_layers_
from rnnslim.prune.structured.vocab import prune_vocab_
from rnnslim.tasks.charlm import CharLMTask


def test_pruned_sequence_model_save_load_round_trip(tmp_path):
    task = CharLMTask(text="to be or not to be, that is the question. " * 20)
    model = SequenceModel(task.model_spec("lstm", hidden_size=16, num_layers=3)).eval()
    model.task_meta = task.meta()
    prune_units_(model, StructuredPruning(per_layer={0: 0.5, 1: 0.25, 2: 0.5}))
    keep_width = model.rnn.specs[0].output_size
    remove_layers_(model, [1], refit="lstsq", calibration=task, n_batches=2)
    prune_vocab_(model, [0, 1, 2, 3, 4, 5])
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert [s.hidden_size for s in loaded.rnn.specs] == [8, 8] and keep_width == 8
    assert loaded.spec == model.spec and loaded.history == model.history
    assert [r["op"] for r in loaded.history] == ["prune_units", "remove_layers", "prune_vocab"]
    x = torch.randint(0, 6, (7, 2))
    with torch.no_grad():
        assert torch.equal(loaded(x)[0], model(x)[0])


class Tagger(nn.Module):
    """Embedding -> BiLSTM -> LSTM (2 layers) -> per-step Linear; constant-free forward."""

    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(20, 6)
        self.bilstm = nn.LSTM(6, 8, bidirectional=True)
        self.lstm = nn.LSTM(16, 16, num_layers=3)
        self.decoder = nn.Linear(16, 20)

    def forward(self, x):
        h, _ = self.bilstm(self.embedding(x))
        h, _ = self.lstm(torch.relu(h))
        return self.decoder(h)


def test_history_replay_re_creates_a_pruned_user_model(tmp_path):
    torch.manual_seed(1)
    model = Tagger().eval()
    remove_layers_(model, ["lstm[1]"])
    prune_units_(model, StructuredPruning(ratio=0.5, scope="global"))
    prune_vocab_(model, list(range(0, 20, 2)))
    assert model.lstm.num_layers == 2 and model.embedding.num_embeddings == 10
    save_edited(model, tmp_path / "tagger")
    fresh = load_edited(Tagger(), tmp_path / "tagger")
    assert fresh.history == model.history
    assert fresh.lstm.hidden_size == model.lstm.hidden_size and fresh.bilstm.hidden_size == model.bilstm.hidden_size
    x = torch.randint(0, 10, (5, 3))
    with torch.no_grad():
        assert torch.equal(fresh.eval()(x), model(x))
    # replay alone (no weights) gives the same shapes on another fresh instance
    shapes = {n: p.shape for n, p in replay(Tagger(), model.history).named_parameters()}
    assert shapes == {n: p.shape for n, p in model.named_parameters()}


def test_replay_of_a_declared_coupling_uses_the_recorded_declaration():
    class Att(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(4, 6, batch_first=True)
            self.fc = nn.Linear(6, 2)

        def forward(self, x):
            out, _ = self.lstm(x)
            w = torch.softmax(torch.bmm(out, out.transpose(1, 2)), -1)
            return self.fc(torch.bmm(w, out)[:, -1])

    model = Att()
    prune_units_(model, StructuredPruning(ratio=0.5), consumers={"lstm": ["fc"]})
    assert model.history[-1]["consumers"] == {"lstm": ["fc"]}
    fresh = replay(Att(), copy.deepcopy(model.history))
    assert fresh.lstm.hidden_size == fresh.fc.in_features == 3
    declare = r"'lstm'.*bmm.*\n.*Fix: declare it by hand: consumers=\{'lstm': \['fc'\]\}"
    with pytest.raises(CouplingError, match=declare):  # without the declaration: a clear error
        prune_units_(Att(), StructuredPruning(ratio=0.5))
