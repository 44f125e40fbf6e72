"""Weight bytes read per step (numerator of the bandwidth floor) and the bandwidth measurement."""

import pytest
import torch
from torch import nn

from rnnslim.measure.bandwidth import memory_bandwidth
from rnnslim.measure.weight_bytes import module_bytes_per_step, onnx_bytes_per_step
from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, SequenceModel


def tiny(tie=False) -> SequenceModel:
    spec = ModelSpec(cell="lstm", input_kind=InputKind.EMBEDDING, input_size=50, embed_size=8,
                     layers=[LayerShape(hidden_size=8)], output_size=50, tie_weights=tie)
    return SequenceModel(spec).eval()


def test_embedding_lookup_reads_one_row():
    m = tiny()
    everything = sum(p.numel() * 4 for p in m.parameters())
    assert module_bytes_per_step(m) == everything - m.embedding.weight.numel() * 4 + 8 * 4


def test_tied_table_is_read_in_full_by_the_decoder():
    m = tiny(tie=True)
    assert module_bytes_per_step(m) == sum(p.numel() * 4 for p in m.parameters())


def test_int8_buffers_count_as_bytes():
    mod = nn.Module()
    mod.register_buffer("w", torch.zeros(10, 10, dtype=torch.int8))
    assert module_bytes_per_step(mod) == 100


def test_onnx_bytes_match_torch_and_int8_is_smaller(tmp_path):
    pytest.importorskip("onnxruntime")
    from rnnslim.export.onnx import export_step_onnx, quantize_dynamic_int8

    m = tiny()
    export_step_onnx(m, tmp_path / "f.onnx")
    fp32 = onnx_bytes_per_step(tmp_path / "f.onnx")
    # the ONNX LSTM stores one bias of 8H (W and R biases): same bytes, plus tiny constants
    assert abs(fp32 - module_bytes_per_step(m)) < 256
    quantize_dynamic_int8(tmp_path / "f.onnx", tmp_path / "q.onnx")
    assert onnx_bytes_per_step(tmp_path / "q.onnx") < 0.5 * fp32


def test_memory_bandwidth_is_plausible():
    bw = memory_bandwidth(threads=1, megabytes=16, repeats=2)
    assert 1e8 < bw.bytes_per_s < 1e13  # 0.1 GB/s .. 10 TB/s
    assert bw.floor_ms(int(bw.bytes_per_s)) == pytest.approx(1000.0)


class Int8Table(nn.Module):
    """A quantized embedding stand-in: int8 rows with one scale per row."""

    def __init__(self, vocab: int, dim: int) -> None:
        super().__init__()
        self.register_buffer("weight_q", torch.zeros(vocab, dim, dtype=torch.int8))
        self.register_buffer("weight_scale", torch.ones(vocab))

    def forward(self, x):
        return self.weight_q[x].float() * self.weight_scale[x].unsqueeze(-1)


def test_a_swapped_in_embedding_is_still_a_lookup():
    from rnnslim.measure.macs import macs_per_step

    m = tiny()
    dense_bytes = module_bytes_per_step(m)
    m.embedding = Int8Table(50, 8)
    # one int8 row (8 bytes) + its fp32 scale (4 bytes) instead of one fp32 row (32 bytes)
    assert module_bytes_per_step(m) == dense_bytes - 32 + 8 + 4
    assert macs_per_step(m).parts[0].dense == 0
