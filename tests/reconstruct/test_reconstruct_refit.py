"""Least-squares re-fit after unit removal: the cut model moves back towards the original,
for LSTM and GRU, on the reference model too, and a failure restores the weights."""

import copy

import pytest
import torch
from reconstruct_helpers import batches, logits_error, small_model

from rnnslim.prune import StructuredPruning, prune_units_
from rnnslim.reconstruct import refit as refit_mod
from rnnslim.reconstruct.refit import refit_after_cut_


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
def test_refit_brings_the_cut_model_closer(cell):
    original, data = small_model(cell, hidden=(32, 24)), batches(8)
    m = copy.deepcopy(original)
    res = prune_units_(m, StructuredPruning(ratio=0.5))
    cut_err = logits_error(m, original, data)
    rep = refit_after_cut_(m, original, res, data, iterations=2)
    assert rep["ops"] == 2 * (2 if cell == "gru" else 1) * 2 + 1  # 2 layers x parts x iterations + decoder
    assert logits_error(m, original, data) < 0.5 * cut_err
    assert m.rnn.layers[0].hidden_size == 16  # still the cut size


def test_failure_restores_the_weights(monkeypatch):
    original = small_model()
    m = copy.deepcopy(original)
    res = prune_units_(m, StructuredPruning(ratio=0.5))
    before = {k: v.clone() for k, v in m.state_dict().items()}
    calls = []
    real = refit_mod._fit_group

    def failing(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("boom")
        return real(*a, **k)

    monkeypatch.setattr(refit_mod, "_fit_group", failing)
    with pytest.raises(RuntimeError, match="boom"):
        refit_after_cut_(m, original, res, batches(2))
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())


def test_reference_lstm_cut_recovers_most_of_the_loss(shared_models, shakespeare):
    from rnnslim.io.format import load_model
    from rnnslim.tasks import task_for_model

    base = load_model(shared_models / "charlstm-256x2.json")
    task = task_for_model(base, shakespeare)
    m = copy.deepcopy(base)
    res = prune_units_(m, StructuredPruning(ratio=0.5, round_to=8))
    cut = task.evaluate(m, "valid", max_steps=3000)["loss_nats"]
    refit_after_cut_(m, base, res, task, n_batches=6)
    fitted = task.evaluate(m, "valid", max_steps=3000)["loss_nats"]
    dense = task.evaluate(base, "valid", max_steps=3000)["loss_nats"]
    assert fitted < cut - 0.3 and fitted - dense < 0.5 * (cut - dense)


def test_tied_decoder_is_not_refitted():
    from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, SequenceModel

    spec = ModelSpec(cell="lstm", input_kind=InputKind.EMBEDDING, input_size=17, embed_size=16,
                     layers=[LayerShape(hidden_size=24), LayerShape(hidden_size=16)], output_size=17, tie_weights=True)
    original = SequenceModel(spec).eval()
    m = copy.deepcopy(original)
    res = prune_units_(m, StructuredPruning(per_layer={0: 0.5}))
    emb = m.embedding.weight.detach().clone()
    refit_after_cut_(m, original, res, batches(2))
    assert torch.equal(m.embedding.weight, emb) and m.decoder.weight is m.embedding.weight


def test_embedding_cut_is_folded_into_balanced_factors():
    """After an embedding-width cut layer 0 sees only V distinct inputs: with k + 1 = V kept
    features a plain least-squares fit interpolates with inflated weights (2x the RMS here);
    the fold into a balanced rank-k factorisation of W_ih E^T does not."""
    from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, SequenceModel

    torch.manual_seed(0)
    spec = ModelSpec(cell="lstm", input_kind=InputKind.EMBEDDING, input_size=17, embed_size=24,
                     layers=[LayerShape(hidden_size=32), LayerShape(hidden_size=24)], output_size=17)
    original, data = SequenceModel(spec).eval(), batches(8)
    m = copy.deepcopy(original)
    res = prune_units_(m, StructuredPruning(embed_ratio=1 / 3))  # 24 -> 16 features, V = 17
    cut_err = logits_error(m, original, data)
    rep = refit_after_cut_(m, original, res, data)
    assert rep["embeddings_folded"] == ["embedding"] and m.embedding.weight.shape == (17, 16)
    assert logits_error(m, original, data) < 0.5 * cut_err
    rms = lambda p: float(p.detach().norm() / p.numel() ** 0.5)  # noqa: E731
    assert rms(m.rnn.layers[0].weight_ih_l0) < 1.5 * rms(original.rnn.layers[0].weight_ih_l0)
