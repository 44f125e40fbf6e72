"""lowrank_linears_ on users' own modules: the rank-r Linear replaces the layer, saves and
loads through save_edited / load_edited at its real size, and refuses or keeps what it must."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from user_models import WordLM

from rnnslim.lowrank import LowRankLinear, LowRankLinears, lowrank_linears_  # noqa: E402
from rnnslim.prune import load_edited, save_edited  # noqa: E402


def test_a_word_lm_decoder_at_full_rank_is_the_same_function_and_smaller_at_lower_rank(tmp_path):
    m = WordLM("LSTM", vocab=50, hidden=32).eval()
    x = torch.randint(0, 50, (6, 2))
    ref = m(x)[0]
    res = lowrank_linears_(m, LowRankLinears(paths=["decoder"], rank=8))
    assert isinstance(m.decoder, LowRankLinear) and m.decoder.rank == 8
    assert res.params_before - res.params_after == 50 * 32 - 8 * (32 + 50)
    s = torch.linalg.svdvals((m.decoder.up.weight @ m.decoder.down.weight).detach())
    assert int((s > 1e-5 * s[0]).sum()) == 8  # the product is a rank-8 matrix
    assert m.history[-1]["op"] == "lowrank_linears" and res.sites[0].energy_kept < 1
    save_edited(m, tmp_path / "m")
    save_edited(WordLM("LSTM", vocab=50, hidden=32), tmp_path / "dense")
    size = {d: (tmp_path / d / "weights.safetensors").stat().st_size for d in ("m", "dense")}
    # real bytes: the factors, not a mask (less a few bytes of header for the new tensor names)
    assert size["dense"] - size["m"] >= 4 * (50 * 32 - 8 * 82) - 128
    back = load_edited(WordLM("LSTM", vocab=50, hidden=32), tmp_path / "m").eval()
    assert isinstance(back.decoder, LowRankLinear)
    torch.testing.assert_close(back(x)[0], m(x)[0], rtol=0, atol=0)
    assert not torch.allclose(m(x)[0], ref)  # rank 8 of 32 changed it

    full = WordLM("LSTM", vocab=50, hidden=16).eval()  # 50 x 16: rank 12 still saves parameters
    y = full(x)[0]
    lowrank_linears_(full, LowRankLinears(paths=["decoder"], energy=1.0))
    torch.testing.assert_close(full(x)[0], y, rtol=1e-4, atol=1e-5)


def test_energy_finds_the_rank_of_a_nearly_low_rank_decoder():
    torch.manual_seed(0)
    m = WordLM("GRU", vocab=80, hidden=32).eval()
    with torch.no_grad():  # rank 5 plus noise 1000x smaller
        m.decoder.weight.copy_(torch.randn(80, 5) @ torch.randn(5, 32) + 1e-3 * torch.randn(80, 32))
    x = torch.randint(0, 80, (9, 3))
    with torch.no_grad():
        ref = m(x)[0]
        res = lowrank_linears_(m, LowRankLinears(energy=0.9999))
        out = m(x)[0]
    assert res.ranks == {"decoder": 5} and res.sites[0].energy_kept >= 0.9999
    assert float((out - ref).abs().max()) < 0.05 * float(ref.abs().max())


def test_what_is_kept_and_what_is_refused_leaves_the_model_as_it_was():
    tied = WordLM("GRU", tie=True)
    res = lowrank_linears_(tied, LowRankLinears(rank=2))
    assert type(tied.decoder) is nn.Linear and "tied" in res.notes[0]  # tied to the embedding: kept
    small = WordLM("LSTM", vocab=50, hidden=32)
    res = lowrank_linears_(small, LowRankLinears(paths=["decoder"], rank=31))  # 31 x 82 > 50 x 32
    assert type(small.decoder) is nn.Linear and "saves no parameters" in res.notes[0]
    state = {k: v.clone() for k, v in small.state_dict().items()}
    with pytest.raises(ValueError, match="not nn.Linear layers"):
        lowrank_linears_(small, LowRankLinears(paths=["decoder", "rnn"], rank=4))
    assert type(small.decoder) is nn.Linear and all(torch.equal(state[k], v) for k, v in small.state_dict().items())
    with pytest.raises(ValueError, match="exactly one of energy, rank"):
        LowRankLinears(rank=3, energy=0.9)


def test_sequence_models_are_pointed_at_lowrank():
    from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, SequenceModel

    m = SequenceModel(ModelSpec(cell="lstm", input_kind=InputKind.EMBEDDING, input_size=11, embed_size=8,
                                layers=[LayerShape(hidden_size=8)], output_size=11))
    with pytest.raises(TypeError, match="targets=\\['output'\\]"):
        lowrank_linears_(m, LowRankLinears(rank=2))
