"""QAT continued from a weight-only quantized (GPTQ / PTQ) model keeps that model's grid:
step 0 is exactly the quantized model, training refines codes on fixed scales, and a
format that would re-quantize the layer is refused with the model left as it was."""

import copy

import pytest
import torch
from torch import nn

from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, SequenceModel
from rnnslim.quantize.api import QAT, WeightOnly, quantize_
from rnnslim.quantize.formats import int_format
from rnnslim.quantize.lowbit import QuantLinear, QuantRecurrent
from rnnslim.quantize.qat import QATEmbedding, QATLinear, QATRecurrent, convert_qat_, prepare_qat_

# MSE clip chooses scales min-max would not re-derive from the dequantized weights
MSE2 = WeightOnly(bits=2, group_size=8, clip="mse")


def _model(cell="lstm"):
    torch.manual_seed(0)
    return SequenceModel(ModelSpec(cell=cell, input_kind=InputKind.EMBEDDING, input_size=11, embed_size=8,
                                   layers=[LayerShape(hidden_size=16)] * 2, output_size=11))


def _ptq(cell="lstm", cfg=MSE2):
    return quantize_(_model(cell), cfg)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_step_zero_is_the_quantized_model_and_convert_gives_it_back(cell):
    ptq = _ptq(cell).eval()
    qat = prepare_qat_(m := copy.deepcopy(ptq), MSE2.weight_format()) and m
    assert isinstance(qat.rnn.layers[0], QATRecurrent) and qat.rnn.layers[0].grids is not None
    assert isinstance(qat.embedding, QATEmbedding) and isinstance(qat.decoder, QATLinear)
    x = torch.randint(0, 11, (3, 7))
    with torch.no_grad():
        assert torch.equal(qat.eval()(x)[0], ptq(x)[0])
    convert_qat_(qat)
    got, want = qat.state_dict(), ptq.state_dict()
    assert got.keys() == want.keys()
    for k in want:  # codes, scales and biases byte-identical
        assert torch.equal(got[k], want[k]), k


def test_min_max_qat_of_the_same_weights_would_not_start_there():
    """Why the grid is frozen: re-deriving min-max scales from GPTQ-like weights moves the model."""
    ptq = _ptq().eval()
    layer = ptq.rnn.layers[0]
    fresh = QATRecurrent.from_float(layer.to_float(), int_format(2, 8))
    assert not torch.equal(fresh.flat_weights()[0], layer.flat_weights()[0])


def test_training_moves_codes_on_fixed_scales():
    ptq = _ptq()
    qat = copy.deepcopy(ptq)
    prepare_qat_(qat, MSE2.weight_format())
    rnn = qat.rnn.layers[0]
    scales = {n: g.scale.clone() for n, g in rnn.grids.items()}
    x = torch.randint(0, 11, (4, 9))
    logits, _ = qat(x)
    nn.functional.cross_entropy(logits.reshape(-1, 11), x.reshape(-1)).backward()
    assert rnn.weight_hh_l0.grad.abs().sum() > 0  # the STE passes gradients to the latent weights
    with torch.no_grad():  # a training step large enough to cross rounding thresholds
        rnn.weight_ih_l0.add_(0.2 * torch.randn(rnn.weight_ih_l0.shape, generator=torch.Generator().manual_seed(1)))
    fq = [w.detach().clone() for w in rnn.flat_weights()]
    convert_qat_(qat)
    conv = qat.rnn.layers[0]
    assert isinstance(conv, QuantRecurrent)
    for n, s in scales.items():
        assert torch.equal(conv.qweights[n].scale.float(), s)
    assert torch.equal(conv.flat_weights()[0], fq[0])  # the converted codes are the trained fake-quant ones
    assert not torch.equal(conv.flat_weights()[0], ptq.rnn.layers[0].flat_weights()[0])


def test_another_format_is_refused_and_the_model_left_as_it_was():
    ptq = _ptq()
    before = copy.deepcopy(ptq.state_dict())
    with pytest.raises(ValueError, match=r"embedding is already quantized as int2 g8.*would re-quantize"):
        prepare_qat_(ptq, int_format(4, 8))
    assert all(isinstance(ptq.rnn.layers[i], QuantRecurrent) for i in range(2))
    assert all(torch.equal(v, before[k]) for k, v in ptq.state_dict().items())


def test_float_and_quantized_layers_mixed():
    """A model whose rnn is quantized and whose decoder is float: each gets its own kind of QAT."""
    m = quantize_(_model(), WeightOnly(bits=2, group_size=8, targets=("rnn",)))
    prepare_qat_(m, int_format(2, 8))
    assert m.rnn.layers[0].grids is not None and m.decoder.grid is None


def test_config_round_trip_keeps_the_grid():
    ptq = _ptq()
    prepare_qat_(ptq, MSE2.weight_format())
    for mod in (ptq.rnn.layers[1], ptq.decoder):
        twin = type(mod).from_config(mod.rnnslim_config())
        twin.load_state_dict(mod.state_dict())  # grids are state: a checkpoint resumes on the same grid
        x = torch.randn(2, 5, mod.shape.input_size) if isinstance(mod, QATRecurrent) else torch.randn(2, 16)
        with torch.no_grad():
            assert torch.equal(twin(x)[0], mod(x)[0])


def test_lzma_asked_at_convert_is_marked():
    m = _ptq()
    quantize_(m, QAT(weights=WeightOnly(bits=2, group_size=8, entropy_coding=True)))
    quantize_(m, QAT(step="convert"))
    enc = m.tensor_encodings
    assert enc["rnn.layers.0.qweights.weight_ih_l0.codes"] == {"encoding": "lzma"}
    assert isinstance(m.decoder, QuantLinear) and "decoder.qweights.weight.codes" in enc
