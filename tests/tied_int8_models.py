"""Tiny tied fully integer int8 models (vocabulary 20, embedding 6) shared by the quantize and
export tests of the tied int8 table (a helper module like compilers.py, imported by name)."""

from __future__ import annotations

import pytest
import torch

from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, SequenceModel
from rnnslim.quantize.int8 import Int8Config, Int8Mode, quantize_int8_
from rnnslim.quantize.int8.kernel import KernelUnavailable, load_kernel

V, E = 20, 6  # E not a multiple of the 4-column tiles: the row gather reads padded tiles


def _kernel_available() -> bool:
    try:
        load_kernel()
        return True
    except KernelUnavailable:
        return False


needs_kernel = pytest.mark.skipif(not _kernel_available(), reason="no C compiler / kernel here")


def tied_model(cell: str = "lstm", tie: bool = True, hidden: int = 12,
               seed: int = 0) -> tuple[SequenceModel, SequenceModel]:
    """(float model, its fully integer int8 copy): vocabulary 20, embedding 6, layers (hidden, 6)."""
    torch.manual_seed(seed)
    spec = ModelSpec(cell=cell, input_kind=InputKind.EMBEDDING, input_size=V, embed_size=E,
                     layers=[LayerShape(hidden_size=hidden), LayerShape(hidden_size=E)], output_size=V, tie_weights=tie)
    model = SequenceModel(spec).eval()
    with torch.no_grad():  # a bias the decoder must carry in its own scale
        model.decoder.bias.uniform_(-1.0, 1.0)
    q = SequenceModel(spec).eval()
    q.load_state_dict(model.state_dict())
    calib = [torch.randint(0, V, (16, 2), generator=torch.Generator().manual_seed(1))]
    return model, quantize_int8_(q, Int8Config(mode=Int8Mode.INTEGER), calibration=calib)
