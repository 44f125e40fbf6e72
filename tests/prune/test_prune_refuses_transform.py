"""Pruning never touches weights stored in a transform domain (their zeros would not survive saving)."""

import copy

import pytest
import torch

from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, SequenceModel
from rnnslim.prune import NMPruning, UnstructuredPruning, prune_
from rnnslim.transform import DCTSparsity, dct_sparsify_


def _model() -> SequenceModel:
    spec = ModelSpec(cell="lstm", input_kind=InputKind.EMBEDDING, input_size=11, embed_size=12,
                     layers=[LayerShape(hidden_size=16)] * 2, output_size=11)
    torch.manual_seed(0)
    return SequenceModel(spec).eval()


@pytest.mark.parametrize("cfg", [UnstructuredPruning(sparsity=0.5), NMPruning(n=2, m=4)])
def test_prune_refuses_dct_coded_tensors_and_leaves_the_model_as_it_was(cfg):
    m = _model()
    dct_sparsify_(m, DCTSparsity(keep=0.5))
    before = copy.deepcopy(m.state_dict())
    with pytest.raises(ValueError, match=r"weight_ih_l0.*stored as dct.*prune before the transform stage"):
        prune_(m, cfg)
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())


def test_prune_of_tensors_outside_the_transform_still_works():
    m = _model()
    dct_sparsify_(m, DCTSparsity(keep=0.5))  # recurrent weights only (the default targets)
    prune_(m, UnstructuredPruning(sparsity=0.5, targets=("output",)))
    assert (m.decoder.weight == 0).float().mean() >= 0.45
