"""Small fully integer int8 models and the C-kernel skip marks, shared by the quantize, export
and runtime tests (a helper module like compilers.py, imported by name: tests/ is on sys.path
through conftest.py)."""

from __future__ import annotations

import copy

import pytest
import torch

from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, Readout, SequenceModel
from rnnslim.quantize.int8 import Int8Config, Int8Mode, quantize_int8_
from rnnslim.quantize.int8.kernel import KernelUnavailable, KernelVariant, load_kernel


def kernel_available(variant: KernelVariant) -> bool:
    try:
        load_kernel(variant)
        return True
    except KernelUnavailable:
        return False


needs_kernel = pytest.mark.skipif(not kernel_available(KernelVariant.NATIVE), reason="no C compiler / kernel here")
VARIANTS = [pytest.param(v, marks=pytest.mark.skipif(not kernel_available(v), reason=f"{v.value} kernel not buildable here"))
            for v in KernelVariant]


def bidi_flags(bidirectional, n: int) -> list[bool]:
    """bidirectional: a bool for every layer, or one flag per layer"""
    return list(bidirectional) if isinstance(bidirectional, (list, tuple)) else [bool(bidirectional)] * n


def integer_model(cell: str, hidden=(70, 33), vocab=30, embed=45, out=29, bidirectional=False, seed=0,
                  readout: str = "all"):
    """A token model (vocab -> embed -> hidden... -> out) converted to fully integer int8, with
    large recurrent weights (saturating gates, big cell states)."""
    torch.manual_seed(seed)
    spec = ModelSpec(cell=cell, input_kind=InputKind.EMBEDDING, input_size=vocab, embed_size=embed,
                     layers=[LayerShape(hidden_size=h, bidirectional=b)
                             for h, b in zip(hidden, bidi_flags(bidirectional, len(hidden)))],
                     output_size=out, readout=readout)
    model = SequenceModel(spec).eval()
    with torch.no_grad():  # larger recurrent weights than the default init: saturating gates, big cell states
        for layer in model.rnn.layers:
            layer.weight_hh_l0.mul_(3.0)
    calib = [torch.randint(0, vocab, (40, 4)) for _ in range(2)]
    return quantize_int8_(model, Int8Config(mode=Int8Mode.INTEGER), calibration=calib)


def feature_model(cell: str, kind: str, readout: str = "all", F: int = 13, hidden=(40, 24), out: int = 5, seed=0,
                  bidirectional=False):
    """A feature model (F features, input kind identity / linear) converted to fully integer int8."""
    torch.manual_seed(seed)
    spec = ModelSpec(cell=cell, input_kind=kind, input_size=F, embed_size=F if kind == "identity" else 20,
                     layers=[LayerShape(hidden_size=h, bidirectional=b)
                             for h, b in zip(hidden, bidi_flags(bidirectional, len(hidden)))],
                     output_size=out, readout=readout)
    model = SequenceModel(spec).eval()
    calib = [2.0 * torch.randn(30, 4, F) for _ in range(2)]
    return quantize_int8_(model, Int8Config(mode=Int8Mode.INTEGER), calibration=calib)


def crnn_model(cell: str = "gru", act: str = "relu", window: int = 5, padding: int = 2, readout: str = "last",
               F: int = 6, embed: int = 16, hidden=(32,), out: int = 4, seed: int = 0):
    """A CRNN front end (input projection over windows of `window` frames, zero padding, then an
    input activation) converted to fully integer int8."""
    torch.manual_seed(seed)
    spec = ModelSpec(cell=cell, input_kind="linear", input_size=F, embed_size=embed,
                     layers=[LayerShape(hidden_size=h) for h in hidden], output_size=out, readout=readout,
                     input_window=window, input_padding=padding, input_activation=act)
    model = SequenceModel(spec).eval()
    calib = [torch.randn(20, 4, F) for _ in range(2)]
    return quantize_int8_(model, Int8Config(mode=Int8Mode.INTEGER), calibration=calib)


def zero_tiles(q, keep: float = 0.3, seed: int = 0):
    """Empty whole 16 x 4 tiles of every integer matrix (what 16 x 4 block pruning leaves)."""
    g = torch.Generator().manual_seed(seed)
    mats = [getattr(layer, n) for layer in q.rnn.layers for n in ("w_ih", "w_hh")] + [q.decoder.weight]
    for w in mats:
        R, C = w.shape
        tiles = torch.rand(-(-R // 16), -(-C // 4), generator=g) < keep
        mask = tiles.repeat_interleave(16, 0).repeat_interleave(4, 1)[:R, :C]
        w.mul_(mask.to(w.dtype))
    return q


def delta_model(cell: str, kind: str = "embedding", hidden=(70, 33)):
    """Tiny integer model for delta networks: token LM (V 30, E 45) or feature model (13
    features, identity / linear)."""
    torch.manual_seed(0)
    F = 13
    embed = 45 if kind == "embedding" else (F if kind == "identity" else 20)
    spec = ModelSpec(cell=cell, input_kind=InputKind(kind), input_size=30 if kind == "embedding" else F,
                     embed_size=embed, layers=[LayerShape(hidden_size=h) for h in hidden], output_size=29)
    model = SequenceModel(spec).eval()
    with torch.no_grad():
        for layer in model.rnn.layers:
            layer.weight_hh_l0.mul_(3.0)
    calib = ([torch.randint(0, 30, (40, 4)) for _ in range(2)] if kind == "embedding"
             else [2.0 * torch.randn(30, 4, F) for _ in range(2)])
    return quantize_int8_(model, Int8Config(mode=Int8Mode.INTEGER), calibration=calib)


def float_model_64_40(cell="lstm", bidirectional=False, input_kind=InputKind.EMBEDDING, proj=0, readout=Readout.ALL):
    """A float 2-layer model (64 then 40 units; 30 tokens or 6 features in, 30 out), seeded."""
    torch.manual_seed(3)
    spec = ModelSpec(cell=cell, input_kind=input_kind, input_size=30 if input_kind is InputKind.EMBEDDING else 6,
                     embed_size=48 if input_kind is not InputKind.IDENTITY else 6,
                     layers=[LayerShape(hidden_size=64, bidirectional=bidirectional, proj_size=proj),
                             LayerShape(hidden_size=40, bidirectional=bidirectional)],
                     output_size=30, readout=readout)
    return SequenceModel(spec).eval()


def random_inputs(model, T, B, seed):
    """(T, B) token ids or (T, B, F) features for `model`."""
    g = torch.Generator().manual_seed(seed)
    if model.spec.input_kind is InputKind.EMBEDDING:
        return torch.randint(0, model.spec.input_size, (T, B), generator=g)
    return torch.randn(T, B, model.spec.input_size, generator=g)


def integer_copy(model, calib=True):
    """A fully integer int8 copy of `model`, calibrated on three random batches (or not at all)."""
    cal = [random_inputs(model, 40, 4, s) for s in range(3)] if calib else None
    return quantize_int8_(copy.deepcopy(model), Int8Config(mode=Int8Mode.INTEGER), calibration=cal)
