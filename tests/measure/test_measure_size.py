"""Size: parameter counts of the stored tensors and real bytes on disk."""

from pathlib import Path

import torch
from torch import nn

from rnnslim.io.format import save_model
from rnnslim.measure.size import count_parameters, size_stats
from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, SequenceModel


def tiny(cell="lstm", hidden=16, tie=False) -> SequenceModel:
    spec = ModelSpec(cell=cell, input_kind=InputKind.EMBEDDING, input_size=11, embed_size=hidden,
                     layers=[LayerShape(hidden_size=hidden)] * 2, output_size=11, tie_weights=tie)
    return SequenceModel(spec).eval()


def files_size(d: Path) -> int:
    return sum(p.stat().st_size for p in d.iterdir() if p.is_file())


def test_parameters_match_torch_count():
    m = tiny()
    params, nonzero, aux = count_parameters(m)
    assert params == sum(p.numel() for p in m.parameters())
    assert aux == 0


def test_tied_weights_counted_once():
    m = tiny(tie=True)
    params, _, _ = count_parameters(m)
    assert params == sum(p.numel() for p in m.parameters())  # parameters() already de-duplicates
    assert params == count_parameters(tiny())[0] - m.embedding.weight.numel()


def test_nonzeros_after_zeroing():
    m = tiny()
    with torch.no_grad():
        w = m.rnn.layers[0].weight_hh_l0
        w[: w.shape[0] // 2] = 0
        m.decoder.bias.zero_()
    params, nonzero, _ = count_parameters(m)
    assert params - nonzero == w.numel() // 2 + m.decoder.bias.numel()


def test_artifact_bytes_equal_files_on_disk(tmp_path):
    m = tiny()
    d = save_model(m, tmp_path / "m")
    s = size_stats(m, artifact_path=d)
    assert s.artifact_bytes == files_size(d)
    assert s.bits_per_parameter == s.artifact_bytes * 8 / s.parameters
    # without a path the model is saved to a temporary directory: same format, same bytes
    assert size_stats(m).artifact_bytes == s.artifact_bytes
    # fp32 weights + a small manifest: a little above 32 bits per parameter
    assert 32 < s.bits_per_parameter < 40


class Int8Linear(nn.Module):
    """A stand-in for a quantized layer: int8 weights and a scale in buffers, plus a mask."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("weight_q", torch.randint(-127, 128, (8, 4), dtype=torch.int8))
        self.register_buffer("weight_scale", torch.ones(8))
        self.register_buffer("mask", torch.ones(8, 4, dtype=torch.bool))
        self.bias = nn.Parameter(torch.zeros(8))


def test_integer_buffers_count_as_parameters_and_metadata_does_not():
    params, nonzero, aux = count_parameters(Int8Linear())
    assert params == 8 * 4 + 8
    assert aux == 8 + 8 * 4  # scale + mask
    assert nonzero <= 8 * 4  # bias is zero


def test_user_module_size_is_its_safetensors_file():
    s = size_stats(nn.LSTM(4, 8))
    assert s.parameters == sum(p.numel() for p in nn.LSTM(4, 8).parameters())
    assert s.artifact_bytes > s.parameters * 4  # fp32 values + safetensors header
    assert "safetensors" in s.artifact


def test_integer_model_parameters_exclude_tables_and_requantization():
    """int8_integer must not raise the parameter count: LUTs are tables, multipliers/shifts aux."""
    import torch

    from rnnslim.measure.size import size_stats
    from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, SequenceModel
    from rnnslim.quantize.int8 import Int8Config, quantize_int8_

    spec = ModelSpec(cell="lstm", input_kind=InputKind.EMBEDDING, input_size=20, embed_size=16,
                     layers=[LayerShape(hidden_size=16)] * 2, output_size=20)
    m = SequenceModel(spec).eval()
    before = size_stats(m)
    quantize_int8_(m, Int8Config(mode="integer"), calibration=[torch.randint(0, 20, (16, 4))])
    after = size_stats(m)
    # every weight counted once; the integer LSTM stores b_ih + b_hh as one bias (4H per layer fewer)
    assert after.parameters == before.parameters - 2 * 64
    # the sigmoid / tanh tables are derived at load, not stored (io/derived.py): no stored table elements
    assert after.table_elements == 0 and before.table_elements == 0
