"""Per-feature standardisation fitted on a training split and stored in a model's task meta.

classify and forecast scale every feature to zero mean and unit variance with statistics
of the training split only (no peeking at valid/test); the statistics travel with the
model (`task_meta`) so a loaded model sees its data scaled exactly as during training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_STD = 1e-8  # a constant feature is centred but not scaled (std taken as 1)


@dataclass(frozen=True)
class Standardizer:
    mean: np.ndarray  # (F,) float64
    std: np.ndarray  # (F,) float64, > 0

    @classmethod
    def fit(cls, x: np.ndarray) -> Standardizer:
        """x: (N, F) rows of observations; NaN entries (missing values) are ignored."""
        if x.ndim != 2 or x.shape[0] == 0:
            raise ValueError(f"need a non-empty (rows, features) array to fit the scaling, got shape {x.shape}")
        with np.errstate(all="ignore"):
            mean = np.nanmean(x, axis=0)
            std = np.nanstd(x, axis=0)
        mean = np.where(np.isfinite(mean), mean, 0.0)  # all-missing feature
        std = np.where(np.isfinite(std) & (std > MIN_STD), std, 1.0)
        return cls(mean.astype(np.float64), std.astype(np.float64))

    @property
    def n_features(self) -> int:
        return len(self.mean)

    def apply(self, x: np.ndarray) -> np.ndarray:
        """(..., F) -> (..., F) standardised, float32. NaN (a missing value) stays NaN; an
        infinite value, or one too large for float32 once standardised, is refused (it would
        silently become inf and poison training)."""
        with np.errstate(all="ignore"):
            z = (np.asarray(x, dtype=np.float64) - self.mean) / self.std
            z32 = z.astype(np.float32)
        bad = ~np.isfinite(z32) & ~np.isnan(np.asarray(x, dtype=np.float64))
        if bad.any():
            idx = np.argwhere(bad)[0]
            raise ValueError(f"feature {int(idx[-1])} holds {float(np.asarray(x)[tuple(idx)])!r}, which is infinite or "
                             "too large to standardise in float32 (mean "
                             f"{self.mean[idx[-1]]:.4g}, std {self.std[idx[-1]]:.4g}); fix or drop that value")
        return z32

    def invert(self, z: np.ndarray) -> np.ndarray:
        """(..., F) standardised -> original units."""
        return z * self.std + self.mean

    def to_meta(self) -> dict:
        return {"mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std]}

    @classmethod
    def from_meta(cls, meta: dict, n_features: int, what: str = "features") -> Standardizer:
        """Rebuild from `to_meta()` output, checking it covers `n_features` features."""
        try:
            mean = np.asarray(meta["mean"], dtype=np.float64)
            std = np.asarray(meta["std"], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"the model's task meta has no usable normalisation for its {what} ({e})") from None
        if mean.shape != (n_features,) or std.shape != (n_features,):
            raise ValueError(f"the model was trained on {len(mean)} {what} but the data has {n_features}")
        if not np.all(std > 0):
            raise ValueError(f"the model's task meta has a non-positive standard deviation for its {what}")
        return cls(mean, std)
