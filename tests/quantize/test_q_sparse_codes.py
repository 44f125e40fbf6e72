"""A pruned layer quantized without `entropy_coding` still stores its codes entropy coded:
its zeros become one repeated code, so the artifact shrinks with sparsity (issue 23)."""

import pytest
import torch

from rnnslim.io.format import artifact_bytes, load_model, save_model
from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, SequenceModel
from rnnslim.prune.masks import mark_sparse_
from rnnslim.quantize.api import WeightOnly, quantize_
from rnnslim.quantize.targets import Target


def _pruned(sparsity: float, mark: bool = True) -> SequenceModel:
    torch.manual_seed(0)
    spec = ModelSpec(cell="lstm", input_kind=InputKind.EMBEDDING, input_size=16, embed_size=32,
                     layers=[LayerShape(hidden_size=48), LayerShape(hidden_size=48)], output_size=16)
    model = SequenceModel(spec).eval()
    names = []
    with torch.no_grad():
        for name, p in model.rnn.named_parameters(prefix="rnn"):
            if ".weight" in name and sparsity > 0:
                k = int(sparsity * p.numel())
                p[p.abs() <= p.abs().flatten().kthvalue(k).values] = 0  # (4H, in) with `sparsity` zeros
                names.append(name)
    if mark:
        mark_sparse_(model, names)
    return model


def _bytes(model, tmp, bits=3) -> int:
    quantize_(model, WeightOnly(bits=bits, group_size=16, targets=(Target.RNN,)))  # entropy_coding off
    return artifact_bytes(save_model(model, tmp))


def test_pruned_codes_shrink_with_sparsity_without_asking(tmp_path):
    sizes = [_bytes(_pruned(s), tmp_path / f"s{s}") for s in (0.0, 0.5, 0.9)]
    assert sizes[0] > sizes[1] > sizes[2]
    assert sizes[2] < 0.8 * sizes[0]
    enc = load_model(tmp_path / "s0.9").tensor_encodings
    assert enc["rnn.layers.0.qweights.weight_hh_l0.codes"]["encoding"] == "lzma"
    assert "rnn.layers.0.qweights.weight_hh_l0.codes" not in (load_model(tmp_path / "s0.0").tensor_encodings or {})


@pytest.mark.parametrize("mark", [True, False])
def test_round_trip_is_exact_and_only_marked_weights_are_coded(tmp_path, mark):
    model = _pruned(0.7, mark=mark)
    _bytes(model, tmp_path / "m")
    back = load_model(tmp_path / "m")
    x = torch.randint(0, 16, (7, 2))
    assert torch.equal(back(x)[0], model(x)[0])
    coded = [k for k, v in (back.tensor_encodings or {}).items() if v.get("encoding") == "lzma"]
    assert bool(coded) is mark  # an unmarked model (zeros not from a pruning stage) keeps dense codes
