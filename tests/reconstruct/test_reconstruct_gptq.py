"""GPTQ: stored like quantize_weights (same kinds, same bytes, exact round trip), closer to
the float model than round-to-nearest, zeros kept, atomic on failure."""

import copy

import pytest
import torch
from reconstruct_helpers import batches, logits_error, small_model

from rnnslim.io.format import artifact_bytes, load_model, save_model
from rnnslim.quantize.api import WeightOnly, quantize_
from rnnslim.quantize.lowbit import QuantLinear, QuantRecurrent
from rnnslim.quantize.primitives import ClipMethod
from rnnslim.reconstruct import GPTQ, quantize_gptq_


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_gptq_beats_rounding_and_stores_the_same_way(cell, tmp_path):
    dense, data = small_model(cell, hidden=(32, 32)), batches(8)
    g, r = copy.deepcopy(dense), copy.deepcopy(dense)
    records = quantize_gptq_(g, GPTQ(bits=2, group_size=4, symmetric=False, calibration_batches=8), data)
    quantize_(r, WeightOnly(bits=2, group_size=4, symmetric=False, clip=ClipMethod.MSE))
    assert isinstance(g.rnn.layers[0], QuantRecurrent) and isinstance(g.decoder, QuantLinear)
    assert all(rec.weight_sqnr_db > 0 for rec in records)
    assert logits_error(g, dense, data) < 0.8 * logits_error(r, dense, data)
    save_model(g, tmp_path / "g")
    save_model(r, tmp_path / "r")
    # same tensors, same bytes; the manifest differs only by the GPTQ history entry
    assert (tmp_path / "g" / "model.safetensors").stat().st_size == (tmp_path / "r" / "model.safetensors").stat().st_size
    assert abs(artifact_bytes(tmp_path / "g") - artifact_bytes(tmp_path / "r")) < 1000
    back = load_model(tmp_path / "g")
    x = data[0].inputs
    assert torch.equal(back(x)[0], g(x)[0])
    assert g.history[-1]["op"] == "quantize_gptq"


def test_pruned_zeros_stay_zero():
    m = small_model()
    w = m.rnn.layers[0].weight_hh_l0
    with torch.no_grad():
        w[:, ::2] = 0
    quantize_gptq_(m, GPTQ(bits=4, group_size=4, calibration_batches=2), batches(2))
    q = m.rnn.layers[0].qweights["weight_hh_l0"].dequantize()
    assert int((q[:, ::2] != 0).sum()) == 0


def test_failure_leaves_the_model_float_and_unchanged(monkeypatch):
    import rnnslim.reconstruct.gptq as gptq

    def broken(*a, **k):
        raise RuntimeError("codes could not be installed")

    monkeypatch.setattr(gptq, "_install_codes", broken)  # fails after the layers were swapped
    m = small_model()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    with pytest.raises(RuntimeError, match="codes could not be installed"):
        quantize_gptq_(m, GPTQ(bits=4, group_size=4, calibration_batches=2), batches(2))
    assert not isinstance(m.rnn.layers[0], QuantRecurrent)
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())


def test_a_group_that_divides_no_layer_is_fitted_like_quantize_weights(tmp_path):
    """embed 12, hidden 24 / 16: a group of 10 divides none; each layer gets the group (or one
    scale per row) that quantize_weights gives it, and the same stored bytes."""
    g, r = small_model(), small_model()
    quantize_gptq_(g, GPTQ(bits=4, group_size=10, calibration_batches=2), batches(2))
    quantize_(r, WeightOnly(bits=4, group_size=10, clip=ClipMethod.MSE))
    for path in ("rnn.layers.0", "rnn.layers.1", "decoder"):
        assert g.get_submodule(path).fmt == r.get_submodule(path).fmt
    save_model(g, tmp_path / "g")
    save_model(r, tmp_path / "r")
    assert (tmp_path / "g" / "model.safetensors").stat().st_size == (tmp_path / "r" / "model.safetensors").stat().st_size


def test_tied_decoder_is_rounded_not_walked():
    from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, SequenceModel

    spec = ModelSpec(cell="lstm", input_kind=InputKind.EMBEDDING, input_size=17, embed_size=16,
                     layers=[LayerShape(hidden_size=24), LayerShape(hidden_size=16)], output_size=17, tie_weights=True)
    m = SequenceModel(spec).eval()
    assert m.decoder.weight is m.embedding.weight
    quantize_gptq_(m, GPTQ(bits=4, group_size=8, calibration_batches=2), batches(2))
    walked = m.history[-1]["gptq"]["relative_output_error"]
    assert "decoder.weight" not in walked and "rnn.layers.1.weight_hh_l0" in walked
    assert torch.isfinite(m(batches(1)[0].inputs)[0]).all()
