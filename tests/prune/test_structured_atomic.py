"""prune_units_ is all or nothing: a failed run check leaves the user's model exactly as it was."""

from __future__ import annotations

import pytest
import torch
from user_models import HiddenAttrLM

from rnnslim.prune import StructuredPruning, prune_units_


class LiteralLM(HiddenAttrLM):
    """init_hidden hard-codes the number 32: no attribute to update, the run check fails."""

    def init_hidden(self, bsz):
        return (torch.zeros(2, bsz, 32), torch.zeros(2, bsz, 32))


def test_failed_run_check_restores_the_model():
    torch.manual_seed(0)
    m = LiteralLM()
    m.history = [{"op": "trained"}]
    before = {k: v.clone() for k, v in m.state_dict().items()}
    x = torch.randint(0, 50, (7, 3))
    ref = m(x)[0]
    with pytest.raises(RuntimeError, match=r"no longer runs on the example inputs(.|\n)*hard-codes a layer size"):
        prune_units_(m, StructuredPruning(ratio=0.5), example_inputs=(x,))
    after = m.state_dict()
    assert list(after) == list(before) and all(torch.equal(before[k], after[k]) for k in before)
    assert m.history == [{"op": "trained"}] and m.rnn.hidden_size == 32
    assert m.hidden == 32  # the attribute update is undone with the rest
    assert torch.equal(m(x)[0], ref)


def test_a_size_attribute_the_model_reads_is_updated_with_the_cut():
    """HiddenAttrLM.hidden = 32, read by init_hidden: the cut sets it to 16 (recorded), so the model runs."""
    torch.manual_seed(0)
    m = HiddenAttrLM()
    x = torch.randint(0, 50, (7, 3))
    res = prune_units_(m, StructuredPruning(ratio=0.5), example_inputs=(x,))
    assert m.rnn.hidden_size == 16 and m.hidden == 16 and m(x)[0].shape == (7, 3, 50)
    assert res.updated_attributes == {"HiddenAttrLM.hidden": [32, 16]} and res.stale_attributes == []
    assert m.history[-1]["attributes"] == {"HiddenAttrLM.hidden": [32, 16]}
    assert "updated: HiddenAttrLM.hidden 32 -> 16" in str(res)


class ChunkedLM(HiddenAttrLM):
    """`chunk` equals the hidden size by chance and its name says nothing about it: reported, left alone."""

    def __init__(self):
        super().__init__()
        self.chunk = 32

    def forward(self, x, hidden=None):
        return super().forward(x[: self.chunk], hidden)


def test_an_attribute_that_only_equals_the_old_size_is_reported_not_changed():
    torch.manual_seed(0)
    m = ChunkedLM()
    res = prune_units_(m, StructuredPruning(ratio=0.5), example_inputs=(torch.randint(0, 50, (7, 3)),))
    assert m.chunk == 32 and m.hidden == 16
    assert res.stale_attributes == ["ChunkedLM.chunk = 32 names an old size (rnn[0] 32 -> 16; rnn[1] 32 -> 16)"]


def test_tied_embedding_and_decoder_are_cut_with_the_last_layer(tmp_path):

    from user_models import USER_MODELS, train_briefly

    from rnnslim.prune import load_edited, save_edited

    for name in ("word LM, LSTM, tied", "word LM, GRU, tied"):
        m = train_briefly(USER_MODELS[name], steps=30)
        x = torch.randint(0, 50, (5, 2))
        res = prune_units_(m, StructuredPruning(ratio=0.5), example_inputs=(x,))
        assert res.sizes == {"rnn[0]": (32, 16), "rnn[1]": (32, 16)}
        assert m.decoder.weight is m.encoder.weight and m.encoder.embedding_dim == m.decoder.in_features == 16
        y = m(x)[0]
        assert y.shape == (5, 2, 50)
        save_edited(m, tmp_path / name)
        back = load_edited(USER_MODELS[name].make(), tmp_path / name, example_inputs=(x,))
        assert back.decoder.weight is back.encoder.weight and torch.equal(back(x)[0], y)


@pytest.mark.parametrize("hidden", [0, 6])
def test_unit_removal_cuts_the_early_exit_heads_with_their_layers(hidden, tmp_path):
    """Exit heads read every layer's units (not in forward, so no trace sees them): a cut removes
    the same input columns of each head, clears the calibrated thresholds, and routed inference
    and the save/load round trip work on the smaller model."""
    from rnnslim.early_exit import EarlyExit, add_exits_, exit_predict
    from rnnslim.io.format import load_model, save_model
    from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, Readout, SequenceModel

    spec = ModelSpec(cell="lstm", input_kind=InputKind.IDENTITY, input_size=5, embed_size=5,
                     layers=[LayerShape(hidden_size=16)] * 3, output_size=4, readout=Readout.LAST)
    torch.manual_seed(0)
    m = SequenceModel(spec).eval()
    add_exits_(m, EarlyExit(hidden=hidden))
    m.exits.cfg = m.exits.cfg.model_copy(update={"threshold": 0.9})
    first = [h if hidden == 0 else h[0] for h in m.exits.heads]
    old = [f.weight.detach().clone() for f in first]
    res = prune_units_(m, StructuredPruning(ratio=0.25))
    keeps = list(res.keeps.values())
    first = [h if hidden == 0 else h[0] for h in m.exits.heads]
    for k in range(2):  # head k: the old columns of the kept units of layer k, in order
        assert torch.equal(first[k].weight, old[k][:, keeps[k]]) and first[k].in_features == 12
    assert m.exits.cfg.in_sizes == [12, 12] and m.exits.threshold is None
    assert m.history[-1]["early_exit"]["thresholds_cleared"] == {"threshold": 0.9}
    x = torch.randn(7, 3, 5)
    out = exit_predict(m, x, threshold=0.5)
    assert out.logits.shape == (3, 4)
    save_model(m, tmp_path / "m")
    back = load_model(tmp_path / "m")
    torch.testing.assert_close(exit_predict(back, x, threshold=0.5).logits, out.logits, rtol=0, atol=0)
