"""Calibration observers choose ranges; percentile and MSE resist outliers."""

import pytest
import torch

from rnnslim.quantize.observers import (
    MinMaxObserver,
    MovingAverageObserver,
    MSEObserver,
    ObserverKind,
    PercentileObserver,
    make_observer,
)
from rnnslim.quantize.primitives import Granularity, QSpec, quantize_dequantize

SPEC = QSpec(bits=8, symmetric=False, granularity=Granularity.TENSOR)


def _outlier_batches():
    g = torch.Generator().manual_seed(0)
    batches = [torch.randn(64, 128, generator=g) for _ in range(4)]
    batches[2][3, 5] = 40.0  # one huge activation
    return batches


def _mse(obs, batches):
    scale, zp = obs.qparams()
    x = torch.cat([b.reshape(-1) for b in batches])
    return (quantize_dequantize(x, scale, zp, obs.spec) - x).pow(2).mean()


@pytest.mark.parametrize("bits", [8, 4])
def test_percentile_and_mse_pick_tighter_ranges_than_minmax_on_outliers(bits):
    spec = QSpec(bits=bits, symmetric=False, granularity=Granularity.TENSOR)
    batches = _outlier_batches()
    obs = {k: make_observer(k, spec) for k in (ObserverKind.MINMAX, ObserverKind.PERCENTILE, ObserverKind.MSE)}
    for b in batches:
        for o in obs.values():
            o.observe(b)
    lo_mm, hi_mm = obs[ObserverKind.MINMAX].range()
    assert hi_mm.item() == 40.0
    lo, hi = obs[ObserverKind.PERCENTILE].range()
    assert hi.item() < 0.2 * hi_mm.item() and lo.item() >= lo_mm.item()
    lo, hi = obs[ObserverKind.MSE].range()  # at 8 bits the clipped outlier costs more than the coarser step
    assert hi.item() <= (1.0 if bits == 8 else 0.5) * hi_mm.item() and lo.item() >= lo_mm.item()
    e_mm, e_mse = _mse(obs[ObserverKind.MINMAX], batches), _mse(obs[ObserverKind.MSE], batches)
    # MSE never does worse than min-max (ratio 1 is a candidate); at 4 bits clipping wins big
    assert e_mse <= 1.01 * e_mm
    if bits == 4:
        assert e_mse < 0.2 * e_mm and _mse(obs[ObserverKind.PERCENTILE], batches) < 0.5 * e_mm


def test_per_channel_axis():
    x = torch.randn(100, 3) * torch.tensor([1.0, 5.0, 0.1])
    o = MinMaxObserver(QSpec(bits=8, granularity=Granularity.CHANNEL), axis=1)
    o.observe(x)
    scale, _ = o.qparams()
    assert scale.shape == (3,)
    assert scale[1] > scale[0] > scale[2]
    p = PercentileObserver(SPEC, axis=1, percentile=99.0, max_samples=150)
    p.observe(x)
    assert p.range()[1].shape == (3,)
    assert p.sample.shape == (50, 3)  # the cap counts values: 150 values = 50 rows of 3 channels


def test_sampling_keeps_a_bounded_uniform_sample():
    o = PercentileObserver(SPEC, max_samples=1000, percentile=100.0)
    for k in range(10):
        o.observe(torch.full((500,), float(k)))
    s = o.sample.reshape(-1)
    assert s.numel() == 1000
    counts = torch.bincount(s.long(), minlength=10).float()
    assert counts.min() > 50 and counts.max() < 160  # about 100 from every batch, not only the last ones
    assert o.range()[1].item() == 9.0 and o.count == 5000


def test_moving_average_follows_slowly():
    o = MovingAverageObserver(SPEC, momentum=0.5)
    o.observe(torch.tensor([-1.0, 1.0]))
    o.observe(torch.tensor([-3.0, 3.0]))
    lo, hi = o.range()
    assert lo.item() == -2.0 and hi.item() == 2.0


def test_errors():
    with pytest.raises(RuntimeError, match="calibration"):
        MinMaxObserver(SPEC).qparams()
    with pytest.raises(ValueError, match="unknown observer"):
        make_observer("histogram", SPEC)
    with pytest.raises(ValueError, match="NaN"):
        MinMaxObserver(SPEC).observe(torch.tensor([float("nan")]))
    with pytest.raises(ValueError, match="percentile"):
        PercentileObserver(SPEC, percentile=10)
    assert isinstance(make_observer("mse", SPEC), MSEObserver)
