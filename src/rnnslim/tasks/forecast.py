"""Windowed time-series forecasting from a CSV file.

Data: one CSV file with a header, one row per time step in chronological order. Options:
`columns` (input features, by name; default: every numeric column), `targets` (the
columns to predict; default: the same as `columns`), `window` (input steps), `horizon`
(steps ahead to predict), `bounds` (chronological split by row: train [0, b0),
valid [b0, b1), test [b1, 1) of the rows; default 0.8 / 0.9). Non-numeric columns
(dates, names) are ignored unless named; missing values in a used column are an error.

Samples: for a first target row s, inputs are rows [s - window, s) of `columns`
(window, F) and targets rows [s, s + horizon) of `targets`, flattened horizon-major to
horizon * K values (step 0 of every target, then step 1, ...). A sample belongs to the
split that holds all its target rows; its inputs may reach back into the previous
split (they are past observations, known when forecasting, so nothing leaks).

Scaling: every used column is standardised with mean/std of the train rows, stored in
the task meta. Batches: inputs (window, B, F), targets (B, horizon * K); `seq_len` is
ignored (the window is fixed). Metrics: `mse` (primary, lower is better; in scaled
units, equal to the training loss, comparable across columns) and `mae` in scaled units,
and `mse_orig` / `mae_orig` in the columns' original units (averaged over targets and
horizon steps).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor
from torch.nn import functional as F

from rnnslim.models.sequence import (
    InputKind,
    LayerShape,
    ModelSpec,
    Readout,
    SequenceModel,
)
from rnnslim.tasks.base import SPLITS, Batch, Task
from rnnslim.tasks.scaling import Standardizer
from rnnslim.utils.device import model_device
from rnnslim.utils.progress import track

EVAL_BATCH = 512


class ForecastConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    columns: list[str] | None = Field(default=None, description="input columns (default: all numeric)")
    targets: list[str] | None = Field(default=None, description="predicted columns (default: the inputs)")
    window: int = Field(default=48, ge=1, description="input time steps per sample")
    horizon: int = Field(default=1, ge=1, description="time steps predicted per sample")
    bounds: tuple[float, float] = Field(default=(0.8, 0.9), description="train/valid and valid/test row fractions")

    @model_validator(mode="after")
    def _check(self) -> ForecastConfig:
        b0, b1 = self.bounds
        if not 0.0 < b0 < b1 < 1.0:
            raise ValueError(f"bounds must satisfy 0 < b0 < b1 < 1, got {self.bounds}")
        for name in ("columns", "targets"):
            v = getattr(self, name)
            if v is not None and (not v or len(set(v)) != len(v)):
                raise ValueError(f"{name} must be a non-empty list of distinct column names, got {v}")
        return self


def read_csv_columns(path: Path) -> tuple[list[str], dict[str, list[str]]]:
    """Header and raw cells per column."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.reader(f) if r]
    if len(rows) < 2:
        raise ValueError(f"{path}: need a header row and data rows")
    header = [h.strip() for h in rows[0]]
    if len(set(header)) != len(header):
        raise ValueError(f"{path}: duplicate column names in the header {header}")
    for k, r in enumerate(rows[1:], start=2):
        if len(r) > len(header):
            raise ValueError(f"{path}: line {k} has {len(r)} cells, the header names {len(header)} columns")
    cols = {h: [r[i] if i < len(r) else "" for r in rows[1:]] for i, h in enumerate(header)}
    return header, cols


def to_float(cells: list[str], column: str = "", path: Path | None = None) -> np.ndarray | None:
    """float64 values (NaN for empty cells); None for a text column (no cell is a number).
    A numeric column with a few cells that are not numbers is an error naming the first one
    (dropping the column, or the cell, would silently change the data)."""
    values, bad = [], []
    for i, c in enumerate(cells):
        if not c.strip():
            values.append(math.nan)
            continue
        try:
            values.append(float(c))
        except ValueError:
            bad.append(i)
            values.append(math.nan)
    if not bad:
        return np.array(values, dtype=np.float64)
    if len(bad) == sum(1 for c in cells if c.strip()):
        return None
    i = bad[0]
    raise ValueError(f"{path or 'data'}: column {column!r}, line {i + 2}: {cells[i][:40]!r} is not a number "
                     f"({len(bad)} such cells; the rest of the column is numeric)")


def split_rows(n: int, bounds: tuple[float, float]) -> dict[str, tuple[int, int]]:
    n1, n2 = int(bounds[0] * n), int(bounds[1] * n)
    return {"train": (0, n1), "valid": (n1, n2), "test": (n2, n)}


class ForecastTask(Task):
    name = "forecast"
    stateful = False
    primary_metric = "mse"
    higher_is_better = False

    def __init__(self, path: str | Path, scaling: dict | None = None, **options) -> None:
        self.config = ForecastConfig(**options)
        from rnnslim.tasks.named_data import looks_like_name, resolve_named

        self.path = Path(path)
        if not self.path.exists() and looks_like_name(path):  # a data set aeon ships, e.g. "Airline"
            self.path = resolve_named(str(path), "forecast")
        if not self.path.is_file():
            raise FileNotFoundError(f"forecast CSV file not found: {self.path}")
        header, raw = read_csv_columns(self.path)
        numeric = {h: v for h in header if (v := to_float(raw[h], h, self.path)) is not None}
        self.columns = list(self.config.columns) if self.config.columns is not None else list(numeric)
        self.targets = list(self.config.targets) if self.config.targets is not None else list(self.columns)
        for c in dict.fromkeys(self.columns + self.targets):
            if c not in raw:
                raise ValueError(f"{self.path}: no column {c!r} (header: {header})")
            if c not in numeric:
                raise ValueError(f"{self.path}: column {c!r} is not numeric")
            bad = np.flatnonzero(np.isnan(numeric[c]))
            if bad.size:
                raise ValueError(f"{self.path}: column {c!r} has {bad.size} missing values (first at data row "
                                 f"{bad[0] + 1}); fill or drop them first")
        if not self.columns:
            raise ValueError(f"{self.path}: no numeric columns")
        x = np.stack([numeric[c] for c in self.columns], 1)  # (N, F)
        y = np.stack([numeric[c] for c in self.targets], 1)  # (N, K)
        self.bounds = split_rows(len(x), self.config.bounds)
        n1 = self.bounds["train"][1]
        if scaling is None:
            self.in_scaler, self.out_scaler = Standardizer.fit(x[:n1]), Standardizer.fit(y[:n1])
        else:
            self.in_scaler = Standardizer.from_meta(scaling.get("inputs", {}), len(self.columns), "input columns")
            self.out_scaler = Standardizer.from_meta(scaling.get("targets", {}), len(self.targets), "target columns")
        self.x = torch.from_numpy(self.in_scaler.apply(x))  # (N, F) scaled
        self.y = torch.from_numpy(self.out_scaler.apply(y))  # (N, K) scaled
        self.starts = {s: self._starts(s) for s in SPLITS}

    def _starts(self, split: str) -> Tensor:
        """First target rows s of the split's samples: window <= s, s + horizon <= split end."""
        a, b = self.bounds[split]
        w, h = self.config.window, self.config.horizon
        first, last = max(a, w), b - h
        if last < first:
            raise ValueError(f"{self.path}: the {split} split (rows {a}..{b}) is too short for window={w} + "
                             f"horizon={h}; use a longer file, a shorter window or other bounds")
        return torch.arange(first, last + 1)

    @classmethod
    def from_data(cls, data: str | Path | None = None, meta: dict | None = None, **options) -> ForecastTask:
        """Uniform factory entry (rnnslim.tasks.make_task); a model's meta supplies columns,
        targets, horizon, window, bounds and scaling. Only `window` and `bounds` may be changed."""
        if data is None:
            raise ValueError("the forecast task needs a CSV file")
        meta = meta or {}
        saved = meta.get("config", {})
        for key in ("columns", "targets", "horizon"):
            if key in options and key in saved and options[key] != saved[key]:
                raise ValueError(f"the model was trained with {key}={saved[key]!r}; it cannot predict with "
                                 f"{key}={options[key]!r}")
        return cls(data, scaling=meta.get("scaling"), **{**saved, **options})

    def meta(self) -> dict:
        cfg = self.config.model_dump(mode="json")
        cfg.update(columns=self.columns, targets=self.targets)  # resolved defaults, reloaded by name
        return {"task": self.name, "config": cfg, "data": str(self.path),
                "scaling": {"inputs": self.in_scaler.to_meta(), "targets": self.out_scaler.to_meta()}}

    @property
    def output_size(self) -> int:
        return self.config.horizon * len(self.targets)

    def model_spec(self, cell="lstm", hidden_size=128, num_layers=2, dropout=0.0, embed_size=None,
                   tie_weights=False) -> ModelSpec:
        if tie_weights:
            raise ValueError("tie_weights applies to language models only, not to forecasting")
        return ModelSpec(cell=cell, input_kind=InputKind.LINEAR, input_size=len(self.columns),
                         embed_size=embed_size or hidden_size, layers=[LayerShape(hidden_size=hidden_size)] * num_layers,
                         output_size=self.output_size, dropout=dropout, readout=Readout.LAST)

    def samples(self, starts: Tensor) -> Batch:
        """inputs (window, B, F) and targets (B, horizon * K) for first target rows `starts` (B,)."""
        w, h = self.config.window, self.config.horizon
        x = self.x[starts[:, None] + torch.arange(-w, 0)]  # (B, window, F)
        y = self.y[starts[:, None] + torch.arange(h)]  # (B, horizon, K)
        return Batch(x.transpose(0, 1), y.reshape(len(starts), -1))

    def batches(self, split, batch_size, seq_len=0, shuffle=False, generator=None) -> Iterator[Batch]:
        self.check_split(split)
        starts = self.starts[split]
        if shuffle:
            starts = starts[torch.randperm(len(starts), generator=generator)]
        for i in range(0, len(starts), batch_size):
            yield self.samples(starts[i : i + batch_size])

    def loss(self, outputs: Tensor, batch: Batch) -> Tensor:
        return F.mse_loss(outputs.float(), batch.targets)

    def check_model(self, model: SequenceModel) -> None:
        spec = model.spec
        if spec.input_kind is InputKind.EMBEDDING:
            raise ValueError("the model reads token ids, but forecasting feeds float features")
        if spec.input_size != len(self.columns):
            raise ValueError(f"the model expects {spec.input_size} input columns, the task has {len(self.columns)} "
                             f"({self.columns})")
        if spec.output_size != self.output_size:
            raise ValueError(f"the model predicts {spec.output_size} values per sample, the task needs "
                             f"horizon {self.config.horizon} x {len(self.targets)} targets = {self.output_size}")
        if spec.readout is Readout.ALL:
            raise ValueError("forecasting needs a model with readout 'last' or 'mean', not 'all'")
        cfg = (getattr(model, "task_meta", None) or {}).get("config", {})
        for key, ours in (("columns", self.columns), ("targets", self.targets)):
            if key in cfg and list(cfg[key]) != ours:
                raise ValueError(f"the model was trained with {key} {cfg[key]}, the task has {ours}")

    @torch.no_grad()
    def evaluate(self, model, split="valid", max_steps=None) -> dict:
        """MSE/MAE over the split's windows (or the first max_steps), scaled and original units."""
        self.check_model(model)
        self.check_split(split)
        starts = self.starts[split]
        if max_steps:
            starts = starts[:max_steps]
        was_training = model.training
        model.eval()
        device = model_device(model)
        preds, trues = [], []
        for i in track(range(0, len(starts), EVAL_BATCH), desc=f"evaluate {split}"):
            b = self.samples(starts[i : i + EVAL_BATCH]).to(device)
            out, _ = model(b.inputs)  # (B, horizon * K)
            preds.append(out.float().cpu())
            trues.append(b.targets.cpu())
        model.train(was_training)
        p, t = torch.cat(preds), torch.cat(trues)  # (N, horizon * K) scaled
        K = len(self.targets)
        p_orig = self.out_scaler.invert(p.reshape(len(p), -1, K).double().numpy())
        t_orig = self.out_scaler.invert(t.reshape(len(t), -1, K).double().numpy())
        mse = F.mse_loss(p, t).item()
        return {"loss": mse, "mse": mse, "mae": (p - t).abs().mean().item(),
                "mse_orig": float(np.mean((p_orig - t_orig) ** 2)), "mae_orig": float(np.mean(np.abs(p_orig - t_orig))),
                "windows": len(p)}
