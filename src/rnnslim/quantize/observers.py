"""Observers: watch activations during calibration and choose a quantization range.

    obs = make_observer(ObserverKind.PERCENTILE, QSpec(bits=8, symmetric=False))
    for batch in calibration: obs.observe(activation)        # any shape
    scale, zero_point = obs.qparams()

Per-tensor by default; `axis=k` keeps one range per index of dimension k (per channel).

- min-max: the exact range seen; one outlier stretches the step for everyone.
- moving-average min-max: exponential average of per-batch ranges (QAT-style).
- percentile: the p-th / (100-p)-th percentiles of a uniform sample of everything seen.
- MSE: the range (clipped min-max) that minimises the quantization MSE on that sample.

Percentile and MSE keep a uniform sample of at most `max_samples` values (whole rows of
C channels) by bottom-k sampling (each observed row gets a random key; the rows with the smallest keys stay),
which is an exact uniform sample of the whole stream, seeded for reproducibility.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from enum import Enum

import torch
from torch import Tensor

from rnnslim.quantize.primitives import QSpec, qparams_from_range


class ObserverKind(str, Enum):
    MINMAX = "minmax"
    MOVING_AVERAGE = "moving_average"
    PERCENTILE = "percentile"
    MSE = "mse"


def _rows(x: Tensor, axis: int | None) -> Tensor:
    """(N, C) float view: C = x.shape[axis] channels, or C = 1 for per-tensor."""
    x = x.detach().float()
    if axis is None:
        return x.reshape(-1, 1)
    return x.movedim(axis, -1).reshape(-1, x.shape[axis])


class Observer(ABC):
    def __init__(self, spec: QSpec, axis: int | None = None) -> None:
        self.spec = spec
        self.axis = axis
        self.count = 0  # values observed

    def observe(self, x: Tensor) -> None:
        rows = _rows(x, self.axis)
        if rows.numel() == 0:
            return
        if not torch.isfinite(rows).all():
            raise ValueError(f"{type(self).__name__}: observed NaN or infinite values")
        self._update(rows)
        self.count += rows.numel()

    @abstractmethod
    def _update(self, rows: Tensor) -> None: ...

    @abstractmethod
    def _range(self) -> tuple[Tensor, Tensor]: ...

    def range(self) -> tuple[Tensor, Tensor]:
        """(lo, hi), each of shape (C,) (C = 1 per-tensor)."""
        if self.count == 0:
            raise RuntimeError(f"{type(self).__name__} has not observed anything; run calibration first")
        return self._range()

    def qparams(self) -> tuple[Tensor, Tensor]:
        """(scale, zero_point) of shape (C,), ready for primitives.quantize with a per-tensor
        (C = 1) or per-channel spec."""
        lo, hi = self.range()
        return qparams_from_range(lo, hi, self.spec)


class MinMaxObserver(Observer):
    def __init__(self, spec: QSpec, axis: int | None = None) -> None:
        super().__init__(spec, axis)
        self.lo: Tensor | None = None
        self.hi: Tensor | None = None

    def _update(self, rows: Tensor) -> None:
        lo, hi = rows.amin(0), rows.amax(0)
        self.lo = lo if self.lo is None else torch.minimum(self.lo, lo)
        self.hi = hi if self.hi is None else torch.maximum(self.hi, hi)

    def _range(self) -> tuple[Tensor, Tensor]:
        return self.lo, self.hi


class MovingAverageObserver(MinMaxObserver):
    def __init__(self, spec: QSpec, axis: int | None = None, momentum: float = 0.01) -> None:
        super().__init__(spec, axis)
        if not 0 < momentum <= 1:
            raise ValueError(f"momentum must be in (0, 1], got {momentum}")
        self.momentum = momentum

    def _update(self, rows: Tensor) -> None:
        lo, hi = rows.amin(0), rows.amax(0)
        if self.lo is None:
            self.lo, self.hi = lo, hi
        else:
            self.lo = self.lo + self.momentum * (lo - self.lo)
            self.hi = self.hi + self.momentum * (hi - self.hi)


class _SamplingObserver(Observer):
    """Keeps a uniform sample of observed rows (bottom-k sampling, seeded)."""

    def __init__(self, spec: QSpec, axis: int | None = None, max_samples: int = 1 << 18, seed: int = 0) -> None:
        super().__init__(spec, axis)
        if max_samples < 1:
            raise ValueError("max_samples must be >= 1")
        self.max_samples = max_samples
        self._gen = torch.Generator().manual_seed(seed)
        self._sample: Tensor | None = None  # (n, C)
        self._keys: Tensor | None = None  # (n,)

    def _update(self, rows: Tensor) -> None:
        keys = torch.rand(rows.shape[0], generator=self._gen)
        if self._sample is not None:
            rows, keys = torch.cat([self._sample, rows]), torch.cat([self._keys, keys])
        cap = max(1, self.max_samples // rows.shape[1])  # max_samples counts values, not rows
        if rows.shape[0] > cap:
            keys, keep = torch.topk(keys, cap, largest=False)
            rows = rows[keep]
        self._sample, self._keys = rows, keys

    @property
    def sample(self) -> Tensor:
        return self._sample


class PercentileObserver(_SamplingObserver):
    def __init__(self, spec: QSpec, axis: int | None = None, percentile: float = 99.99, **kw) -> None:
        super().__init__(spec, axis, **kw)
        if not 50 < percentile <= 100:
            raise ValueError(f"percentile must be in (50, 100], got {percentile}")
        self.percentile = percentile

    def _range(self) -> tuple[Tensor, Tensor]:
        s = self._sample
        n = s.shape[0]
        k_hi = max(1, min(n, round(self.percentile / 100 * n)))  # kthvalue is 1-based
        k_lo = max(1, n + 1 - k_hi)
        return s.kthvalue(k_lo, dim=0).values, s.kthvalue(k_hi, dim=0).values


class MSEObserver(_SamplingObserver):
    """Grid search over clipped ranges [r_lo * min, r_hi * max] minimising the MSE of
    quantize-dequantize on the sample (one ratio for symmetric specs, two otherwise)."""

    def __init__(self, spec: QSpec, axis: int | None = None, grid: int = 20, min_ratio: float = 0.3, **kw) -> None:
        kw.setdefault("max_samples", 1 << 16)
        super().__init__(spec, axis, **kw)
        self.ratios = torch.linspace(1.0, min_ratio, grid + 1).tolist()

    def _err(self, lo: Tensor, hi: Tensor) -> Tensor:
        s = self._sample  # (n, C)
        scale, zp = qparams_from_range(lo, hi, self.spec)
        q = torch.clamp(torch.round(s / scale) + zp, self.spec.qmin, self.spec.qmax)
        return ((q - zp) * scale - s).pow(2).sum(0)  # (C,)

    def _range(self) -> tuple[Tensor, Tensor]:
        s = self._sample
        lo0, hi0 = s.amin(0), s.amax(0)
        best = (self._err(lo0, hi0), lo0, hi0)
        pairs = ([(r, r) for r in self.ratios] if self.spec.symmetric
                 else [(a, b) for a in self.ratios for b in self.ratios])
        for a, b in pairs:
            lo, hi = lo0 * a, hi0 * b
            err = self._err(lo, hi)
            better = err < best[0]
            best = (torch.where(better, err, best[0]), torch.where(better, lo, best[1]), torch.where(better, hi, best[2]))
        return best[1], best[2]


_KINDS = {ObserverKind.MINMAX: MinMaxObserver, ObserverKind.MOVING_AVERAGE: MovingAverageObserver,
          ObserverKind.PERCENTILE: PercentileObserver, ObserverKind.MSE: MSEObserver}


def make_observer(kind: ObserverKind | str, spec: QSpec, axis: int | None = None, **kw) -> Observer:
    """An observer of the given kind; extra keywords go to its constructor."""
    try:
        cls = _KINDS[ObserverKind(kind)]
    except ValueError:
        raise ValueError(f"unknown observer {kind!r}; choose one of {[k.value for k in ObserverKind]}") from None
    return cls(spec, axis, **kw)
