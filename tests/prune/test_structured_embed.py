"""Embedding width (embed_ratio): removing embedding features physically == the original
model with those features' embedding columns zeroed (<= 1e-5), alone and with hidden-unit
pruning, for SequenceModel (embedding or input Linear) and user models; sizes follow in
the ModelSpec, the history replays, tied weights are refused, the re-fit still works."""

import copy

import pytest
import torch
from torch import nn

from rnnslim.graph import CouplingError
from rnnslim.io.format import load_model, save_model
from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, SequenceModel
from rnnslim.prune.structured import StructuredPruning, keep_units_, n_params, prune_units_
from rnnslim.prune.structured.history import load_edited, replay, save_edited
from rnnslim.tasks.base import Batch

TOL = 1e-5


def removed(keep, size):
    return torch.tensor(sorted(set(range(size)) - set(keep)), dtype=torch.long)


def model_of(cell="lstm", layers=({"hidden_size": 9},), embed=12, vocab=13, **kw):
    torch.manual_seed(0)
    spec = ModelSpec(cell=cell, input_kind=InputKind.EMBEDDING, input_size=vocab, embed_size=embed,
                     layers=[LayerShape(**x) for x in layers], output_size=vocab, **kw)
    return SequenceModel(spec).eval()


def random_state(model, batch):
    return [tuple(torch.randn_like(t) for t in s) if isinstance(s, tuple) else torch.randn_like(s)
            for s in model.rnn.init_state(batch)]


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
def test_embedding_cut_equals_zeroed_embedding_columns(cell):
    model = model_of(cell, [dict(hidden_size=9, bidirectional=True), dict(hidden_size=7)])
    ref = copy.deepcopy(model)
    result = prune_units_(model, StructuredPruning(embed_ratio=0.5))
    assert result.sizes == {"embedding": (12, 6)} and list(result.keeps) == ["embedding"]
    G = {"lstm": 4, "gru": 3, "rnn_tanh": 1}[cell]
    assert model.embedding.weight.shape == (13, 6) and model.rnn.input_size == 6 and model.spec.embed_size == 6
    assert model.rnn.layers[0].weight_ih_l0.shape == model.rnn.layers[0].weight_ih_l0_reverse.shape == (G * 9, 6)
    assert result.params_before - result.params_after == 6 * 13 + 2 * G * 9 * 6
    with torch.no_grad():
        ref.embedding.weight[:, removed(result.keeps["embedding"], 12)] = 0
    x, state = torch.randint(0, 13, (6, 3)), random_state(ref, 3)
    with torch.no_grad():
        assert (model(x, state)[0] - ref(x, state)[0]).abs().max() <= TOL


def test_embedding_and_hidden_units_together():
    model = model_of("lstm", [dict(hidden_size=10), dict(hidden_size=8)], embed=16)
    ref = copy.deepcopy(model)
    result = prune_units_(model, StructuredPruning(ratio=0.5, embed_ratio=0.75, round_to=2))
    assert result.sizes == {"rnn.layers.0": (10, 6), "rnn.layers.1": (8, 4), "embedding": (16, 4)}
    assert model.rnn.layers[0].weight_ih_l0.shape == (4 * 6, 4)
    r_e, r0, r1 = (removed(result.keeps[k], n) for k, n in (("embedding", 16), ("rnn.layers.0", 10),
                                                            ("rnn.layers.1", 8)))
    with torch.no_grad():  # zero everything that carries a removed feature / unit onwards
        ref.embedding.weight[:, r_e] = 0
        ref.rnn.layers[0].weight_hh_l0[:, r0] = 0
        ref.rnn.layers[1].weight_ih_l0[:, r0] = 0
        ref.rnn.layers[1].weight_hh_l0[:, r1] = 0
        ref.decoder.weight[:, r1] = 0
        x = torch.randint(0, 13, (5, 2))
        assert (model(x)[0] - ref(x)[0]).abs().max() <= TOL


def test_scores_choose_the_features_and_round_to():
    model = model_of(embed=16)
    with torch.no_grad():
        model.embedding.weight[:, [1, 5, 6]] *= 100  # by far the largest |W| sums
    result = prune_units_(model, StructuredPruning(embed_ratio=0.8))  # 16 * 0.2 = 3.2 -> 3
    assert result.keeps == {"embedding": [1, 5, 6]}
    r2 = prune_units_(model_of(embed=16), StructuredPruning(embed_ratio=0.6, round_to=4))  # 6.4 -> 8
    assert r2.sizes == {"embedding": (16, 8)}


@pytest.mark.parametrize("criterion", ["taylor", "activation"])
def test_data_driven_criteria_score_the_embedding_group(criterion):
    from rnnslim.tasks.charlm import CharLMTask

    task = CharLMTask(text="to be or not to be, that is the question. " * 20)
    model = SequenceModel(task.model_spec("lstm", hidden_size=8, num_layers=1, embed_size=8))
    result = prune_units_(model, StructuredPruning(ratio=0.5, embed_ratio=0.5, criterion=criterion,
                                                   calibration_batches=2), calibration=task)
    assert result.sizes == {"rnn.layers.0": (8, 4), "embedding": (8, 4)} and model.embedding.embedding_dim == 4


def test_per_layer_naming_the_embedding_points_to_embed_ratio():
    with pytest.raises(ValueError, match="give embed_ratio instead"):
        prune_units_(model_of(), StructuredPruning(per_layer={"embedding": 0.5}))


def test_keep_units_and_history_record():
    model = model_of(embed=6)
    w = model.embedding.weight.detach().clone()
    keep_units_(model, {"embedding": [4, 0, 2]})
    assert torch.equal(model.embedding.weight, w[:, [0, 2, 4]])
    assert model.history[-1] == {"op": "prune_units", "keep": {"embedding": [0, 2, 4]},
                                 "sizes": {"embedding": [6, 3]}}


def test_save_load_round_trip_and_replay(tmp_path):
    model = model_of("gru", [dict(hidden_size=8), dict(hidden_size=6)], embed=10)
    fresh = copy.deepcopy(model)
    prune_units_(model, StructuredPruning(ratio=0.5, embed_ratio=0.5))
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert loaded.spec == model.spec and loaded.spec.embed_size == 5 and loaded.embedding.embedding_dim == 5
    x = torch.randint(0, 13, (7, 2))
    with torch.no_grad():
        assert torch.equal(loaded(x)[0], model(x)[0])
    shapes = {n: p.shape for n, p in replay(fresh, model.history).named_parameters()}
    assert shapes == {n: p.shape for n, p in model.named_parameters()} and fresh.spec == model.spec


def test_tied_embedding_width_follows_the_last_layer():
    """decoder.weight is embedding.weight: the embedding width is the last layer's units, cut with
    them (never on its own: embed_ratio and keep_units_ on "embedding" say so)."""
    model = model_of(layers=[dict(hidden_size=9), dict(hidden_size=12)], tie_weights=True)
    with pytest.raises(CouplingError, match=r"'embedding'.*cut together with rnn.layers.1 \(tied weights"):
        prune_units_(model, StructuredPruning(ratio=0.5, embed_ratio=0.5))
    assert model.embedding.embedding_dim == 12 and model.rnn.layers[0].hidden_size == 9  # nothing changed
    with pytest.raises(CouplingError, match="embedding width of 'embedding' cannot be cut.*tied"):
        keep_units_(model, {"embedding": [0, 1]})
    x = torch.randint(0, model.spec.input_size, (7, 2))
    prune_units_(model, StructuredPruning(ratio=0.5, round_to=1), example_inputs=(x,))
    assert model.decoder.weight is model.embedding.weight
    assert model.embedding.embedding_dim == model.rnn.layers[1].hidden_size == model.spec.embed_size == 6
    assert model(x)[0].shape == (7, 2, model.spec.output_size)


def test_no_embedding_is_a_clear_error():
    spec = ModelSpec(cell="gru", input_kind=InputKind.IDENTITY, input_size=4, embed_size=4,
                     layers=[LayerShape(hidden_size=6)], output_size=2, readout="last")
    with pytest.raises(CouplingError, match="no nn.Embedding or input nn.Linear feeding a recurrent layer"):
        prune_units_(SequenceModel(spec), StructuredPruning(embed_ratio=0.5))


def linear_input_model():
    torch.manual_seed(0)
    spec = ModelSpec(cell="lstm", input_kind=InputKind.LINEAR, input_size=5, embed_size=12,
                     layers=[LayerShape(hidden_size=16)], output_size=3)
    return SequenceModel(spec).eval()


def test_input_projection_rows_are_cut():
    model = linear_input_model()
    ref = copy.deepcopy(model)
    result = prune_units_(model, StructuredPruning(embed_ratio=0.5))
    assert model.input_proj.weight.shape == (6, 5) and model.input_proj.bias.shape == (6,)
    assert model.spec.embed_size == 6 and model.rnn.layers[0].input_size == 6
    r = removed(result.keeps["input_proj"], 12)
    with torch.no_grad():
        ref.input_proj.weight[r] = 0
        ref.input_proj.bias[r] = 0
        x = torch.randn(6, 2, 5)
        assert (model(x)[0] - ref(x)[0]).abs().max() <= TOL


class Tagger(nn.Module):
    """Embedding -> dropout -> BiLSTM (2 layers, batch first) -> Linear."""

    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(20, 10, padding_idx=0)
        self.lstm = nn.LSTM(10, 8, num_layers=2, bidirectional=True, batch_first=True)
        self.decoder = nn.Linear(16, 20)

    def forward(self, x):
        return self.decoder(self.lstm(nn.functional.dropout(self.embedding(x), 0.2, self.training))[0])


def test_user_model_cut_save_and_replay(tmp_path):
    model = Tagger().eval()
    ref = copy.deepcopy(model)
    result = prune_units_(model, StructuredPruning(embed_ratio=0.4))
    assert model.lstm.input_size == 6 and model.lstm.weight_ih_l0_reverse.shape == (32, 6)
    assert model.embedding.padding_idx == 0
    assert model.lstm.weight_ih_l1.shape == (32, 16)  # layer 1 reads layer 0, untouched
    with torch.no_grad():
        ref.embedding.weight[:, removed(result.keeps["embedding"], 10)] = 0
        x = torch.randint(0, 20, (3, 7))
        assert (model(x) - ref(x)).abs().max() <= TOL
    prune_units_(model, StructuredPruning(ratio=0.5))
    save_edited(model, tmp_path / "t")
    fresh = load_edited(Tagger(), tmp_path / "t")
    with torch.no_grad():
        assert torch.equal(fresh.eval()(x), model(x))


def test_refit_after_an_embedding_cut_recovers_the_logits():
    from rnnslim.reconstruct.refit import refit_after_cut_

    original = model_of("lstm", [dict(hidden_size=24), dict(hidden_size=16)], embed=32, vocab=17)
    data = [Batch(torch.randint(0, 17, (20, 4)), torch.randint(0, 17, (20, 4))) for _ in range(6)]
    m = copy.deepcopy(original)
    res = prune_units_(m, StructuredPruning(ratio=0.25, embed_ratio=0.75))

    def err():
        with torch.no_grad():
            return sum(float((m(b.inputs)[0] - original(b.inputs)[0]).pow(2).mean()) for b in data) / len(data)

    cut = err()
    refit_after_cut_(m, original, res, data, iterations=2)
    assert err() < 0.5 * cut and m.rnn.layers[0].weight_ih_l0.shape == (4 * 18, 8)


def test_refit_maps_the_kept_rows_of_a_cut_input_projection():
    from rnnslim.reconstruct.refit import refit_after_cut_

    original = linear_input_model()
    data = [Batch(torch.randn(20, 4, 5), torch.randn(20, 4, 3)) for _ in range(4)]
    m = copy.deepcopy(original)
    res = prune_units_(m, StructuredPruning(ratio=0.5, embed_ratio=0.5))
    kept = torch.tensor(res.keeps["input_proj"])

    def err():
        with torch.no_grad():
            return sum(float((m(b.inputs)[0] - original(b.inputs)[0]).pow(2).mean()) for b in data) / len(data)

    cut = err()
    refit_after_cut_(m, original, res, data)
    # the kept projection rows already computed the original features: the fit reproduces them
    assert torch.allclose(m.input_proj.weight, original.input_proj.weight[kept], atol=1e-3)
    assert err() < cut


def test_prune_units_stage_takes_embed_ratio(tmp_path):
    from rnnslim.pipeline.stage import StageContext, get_stage, parse_stage
    from rnnslim.tasks.charlm import CharLMTask

    task = CharLMTask(text="all the world's a stage, and all the men and women merely players. " * 20)
    model = SequenceModel(task.model_spec("lstm", hidden_size=16, num_layers=2))
    cfg = parse_stage({"kind": "prune_units", "embed_ratio": 0.5, "refit_batches": 2})
    ctx = StageContext(task=task, work_dir=tmp_path, progress=False)
    model = get_stage("prune_units")[1](model, cfg, ctx)
    E = task.model_spec("lstm", hidden_size=16, num_layers=2).embed_size
    assert ctx.record["sizes"] == {"embedding": [E, E - E // 2]} and ctx.record["refit"]["ops"] > 0


def test_charlstm_512x2_parameter_count(shared_models):
    model = load_model(shared_models / "charlstm-512x2.json")
    V, E, H = 65, 512, 512
    assert model.embedding.weight.shape == (V, E) and n_params(model) == (
        V * E + 4 * H * (E + H + 2) + 4 * H * (H + H + 2) + V * H + V)
    prune_units_(model, StructuredPruning(ratio=0.5, embed_ratio=0.75))
    e, h = E // 4, H // 2
    expected = V * e + 4 * h * (e + h + 2) + 4 * h * (h + h + 2) + V * h + V  # 946,625
    assert n_params(model) == expected == 946_625 and model.spec.embed_size == 128
