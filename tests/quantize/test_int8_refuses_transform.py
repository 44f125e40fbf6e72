"""int8 never silently replaces transform-domain storage (DCT coefficients, circulant blocks)."""

import copy

import pytest
import torch

from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, SequenceModel
from rnnslim.quantize.int8 import Int8Config, quantize_int8_
from rnnslim.transform import BlockCirculant, DCTSparsity, block_circulant_, dct_sparsify_


def _model(cell: str) -> SequenceModel:
    spec = ModelSpec(cell=cell, input_kind=InputKind.EMBEDDING, input_size=11, embed_size=12,
                     layers=[LayerShape(hidden_size=16)] * 2, output_size=11)
    torch.manual_seed(0)
    return SequenceModel(spec).eval()


@pytest.mark.parametrize("mode", ["dynamic", "static", "integer"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_int8_refuses_dct_coded_weights_and_leaves_the_model_as_it_was(cell, mode):
    m = _model(cell)
    dct_sparsify_(m, DCTSparsity(keep=0.5))
    before = copy.deepcopy(m.state_dict())
    calib = [torch.randint(0, 11, (8, 4))]
    with pytest.raises(ValueError, match=r"transform-domain storage of .*weight_ih_l0.*\(dct\).*`bits`"):
        quantize_int8_(m, Int8Config(mode=mode), calibration=calib)
    after = m.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_int8_refuses_block_circulant_weights():
    m = _model("lstm")
    block_circulant_(m, BlockCirculant(block=4))
    with pytest.raises(ValueError, match=r"\(block_circulant\)"):
        quantize_int8_(m, Int8Config(mode="dynamic"))


def test_int8_still_runs_on_a_plain_model():
    m = quantize_int8_(_model("gru"), Int8Config(mode="dynamic"))
    assert m(torch.randint(0, 11, (5, 2)))[0].shape == (5, 2, 11)
