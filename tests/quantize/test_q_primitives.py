"""Affine primitives: shapes per granularity, exact zeros, clipping search, error helpers."""

import math

import pytest
import torch

from rnnslim.quantize.primitives import (
    ClipMethod,
    Granularity,
    QSpec,
    compute_qparams,
    dequantize,
    fake_quantize,
    quant_error,
    quantize,
    quantize_dequantize,
    scale_shape,
    search_clip_qparams,
    sqnr_db,
)


@pytest.mark.parametrize("gran,shape", [(Granularity.TENSOR, (1,)), (Granularity.CHANNEL, (12,)),
                                        (Granularity.GROUP, (12, 4))])
def test_qparams_shapes_match_scale_shape(gran, shape):
    w = torch.randn(12, 32)
    spec = QSpec(bits=4, granularity=gran, group_size=8)
    scale, zp = compute_qparams(w, spec)
    assert tuple(scale.shape) == shape == scale_shape(w.shape, spec)
    q = quantize(w, scale, zp, spec)
    assert q.min() >= spec.qmin and q.max() <= spec.qmax
    assert sqnr_db(w, dequantize(q, scale, zp, spec)) > 15


def test_group_size_must_divide_columns():
    with pytest.raises(ValueError, match="does not divide"):
        compute_qparams(torch.randn(4, 30), QSpec(granularity=Granularity.GROUP, group_size=8))
    with pytest.raises(ValueError, match="bits"):
        QSpec(bits=1)


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("bits", [2, 4, 8])
def test_exact_zeros_stay_exact(symmetric, bits):
    w = torch.randn(16, 64) + 0.3  # skewed, so asymmetric ranges are not centred
    w[torch.rand_like(w) < 0.5] = 0.0  # pruned weights
    spec = QSpec(bits=bits, symmetric=symmetric, granularity=Granularity.GROUP, group_size=16)
    for scale, zp in (compute_qparams(w, spec), search_clip_qparams(w, spec)):
        wq = quantize_dequantize(w, scale, zp, spec)
        assert torch.all(wq[w == 0] == 0)


def test_mse_clip_search_beats_minmax_on_outliers():
    w = torch.randn(32, 512) * 0.05
    w[:, 0] = 0.3  # one 6-sigma outlier per row stretches the min-max range
    spec = QSpec(bits=4, granularity=Granularity.CHANNEL)
    e_minmax = (quantize_dequantize(w, *compute_qparams(w, spec), spec) - w).pow(2).sum()
    e_mse = (quantize_dequantize(w, *search_clip_qparams(w, spec), spec) - w).pow(2).sum()
    assert e_mse < 0.7 * e_minmax
    assert ClipMethod("mse") is ClipMethod.MSE


def test_fake_quantize_is_straight_through():
    x = torch.randn(8, 16, requires_grad=True)
    y = fake_quantize(x, QSpec(bits=4))
    y.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))
    assert not torch.equal(y.detach(), x.detach())


def test_quant_error_fields():
    ref = torch.tensor([1.0, -2.0, 3.0, 0.0])
    approx = ref + torch.tensor([0.1, 0.0, -0.1, 0.0])
    e = quant_error(ref, approx)
    assert e.max_abs == pytest.approx(0.1)
    assert e.mse == pytest.approx(0.005)
    assert e.sqnr_db == pytest.approx(10 * math.log10(14 / 0.02))
    assert e.rel_l2 == pytest.approx(math.sqrt(0.02 / 14))
    assert "dB" in str(e)
    assert quant_error(ref, ref).sqnr_db == math.inf
    with pytest.raises(ValueError, match="shapes differ"):
        quant_error(ref, ref[:2])
