"""Sequence classification from UEA/UCR archives (`.ts`, `.tsv`) or long-format CSV.

Data: a train file and a test file of the same format, given as
- a directory holding exactly one `NAME_TRAIN.{ts,csv,tsv}` with its `NAME_TEST.*`
  (the UEA/UCR naming) or `train.{ts,csv,tsv}` with `test.*`;
- or the train file itself (its `_TEST` / `test` sibling is found), or `test=` explicitly.
Formats:
- `.ts` (UEA/UCR/aeon): read with `aeon.datasets.load_from_ts_file`; aeon is an
  optional extra (`pip install "rnnslim[aeon]"`). Multivariate and unequal length work;
  `?` (missing) becomes NaN.
- `.tsv` (UCR 2018 archive): no header, one sequence per line, the class label first,
  then the values of the univariate series; trailing NaN padding is dropped.
- `.csv` (long layout, with a header): one row per time step,
      id,t,feature_1,...,feature_F,label
  `id` names the sequence (rows of a sequence need not be adjacent; sequences keep the
  order of first appearance), `t` (optional) orders the steps of a sequence (else file
  order), `label` is the class (constant within a sequence), every other column is a
  numeric feature unless `features=[...]` picks some. Empty cells / NaN are missing.
  Column names are options: id_column, time_column, label_column.

Splits: train and test as given; valid is carved from train, stratified by class and
seeded (`valid_fraction`, `seed`), at least one training example kept per class.
Scaling: per-feature mean/std over all time steps of the train split (after the
valid carve), stored in the task meta; missing values become 0 after scaling (= the
feature mean). Classes: the sorted train labels (numerically when all are numbers).

Variable length: sequences are padded with zeros at the FRONT, so the last step, which
the model reads out (Readout.LAST), is always real. Training batches are padded to the
longest sequence of the batch only. Evaluation groups sequences of equal length and
runs them unpadded, so its numbers are exact and do not depend on the batch size.
Batches ignore `seq_len`: each holds whole sequences, inputs (T, B, F), targets (B,).
Metric: accuracy (primary, higher is better) and mean cross-entropy `loss`. A model with
calibrated early exits (rnnslim.early_exit) reports its early-exit accuracy and loss, the full
model's as full_accuracy / full_loss, and the fraction of layer-steps executed
(rnnslim.early_exit.tally, registered with rnnslim.tasks.extensions).
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor
from torch.nn import functional as F

from rnnslim.models.sequence import (
    InputKind,
    LayerShape,
    ModelSpec,
    Readout,
    SequenceModel,
)
from rnnslim.tasks.base import Batch, Task
from rnnslim.tasks.extensions import evaluation_tally
from rnnslim.tasks.remembered_data import data_record
from rnnslim.tasks.scaling import Standardizer
from rnnslim.utils.device import model_device
from rnnslim.utils.progress import track

FORMATS = (".ts", ".tsv", ".csv")
EVAL_BATCH = 256


class ClassifyConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    valid_fraction: float = Field(default=0.2, gt=0.0, lt=1.0, description="share of each class moved to valid")
    seed: int = Field(default=0, description="seed of the valid carve")
    features: list[str] | None = Field(default=None, description="CSV feature columns (default: all others)")
    id_column: str = "id"
    time_column: str = "t"
    label_column: str = "label"


Sequences = tuple[list[np.ndarray], list[str], list[str]]  # [(T_i, F)], labels, feature names


# --- file discovery and readers --------------------------------------------------------
def _test_sibling(train: Path) -> Path:
    name = train.name
    if "_TRAIN" in name:
        return train.with_name(name.replace("_TRAIN", "_TEST"))
    if name.lower().startswith("train"):
        return train.with_name(("TEST" if name.startswith("TRAIN") else "test") + name[5:])
    raise ValueError(f"{train}: cannot tell the test file from this name (expected NAME_TRAIN.ext or "
                     f"train.ext); pass test=PATH")


def _has_test(train: Path) -> bool:
    try:
        return _test_sibling(train).is_file()
    except ValueError:
        return False


def find_train_test(data: str | Path, test: str | Path | None = None) -> tuple[Path, Path]:
    """(train, test) files from a train file, a folder, or a data set name aeon ships.

    A folder holds one data set: NAME_TRAIN.ext (or train.ext) with its test sibling. When
    the same data set is there in several formats (aeon's own folders hold
    NAME_TRAIN.ts and NAME_TRAIN.tsv), the first of FORMATS (.ts, .tsv, .csv) whose test
    file is present is used; when it holds several data sets, the one named like the folder
    (aeon's JapaneseVowels/ also holds JapaneseVowels_eq_TRAIN.ts, an equal-length variant)."""
    from rnnslim.tasks.named_data import looks_like_name, resolve_named

    p = Path(data)
    if not p.exists() and looks_like_name(data):
        p = resolve_named(str(data), "classify")
    if p.is_dir():
        found = [f for f in p.iterdir() if f.suffix in FORMATS and ("_TRAIN" in f.name or f.stem.lower() == "train")]
        sets = {f.stem for f in found}
        if len(sets) > 1 and f"{p.name}_TRAIN" in sets:  # aeon's JapaneseVowels/ also holds JapaneseVowels_eq_*
            found = [f for f in found if f.stem == f"{p.name}_TRAIN"]
            sets = {f"{p.name}_TRAIN"}
        if len(sets) != 1:
            raise FileNotFoundError(f"{p}: expected one data set (NAME_TRAIN.{{ts,tsv,csv}} or train.{{ts,tsv,csv}}), "
                                    f"found {sorted(f.name for f in found) or 'none'}")
        found.sort(key=lambda f: FORMATS.index(f.suffix))
        with_test = [f for f in found if _has_test(f)]
        p = (with_test or found)[0]
    elif not p.is_file():
        raise FileNotFoundError(f"classification data not found: {p}")
    if p.suffix not in FORMATS:
        raise ValueError(f"{p}: unsupported format {p.suffix!r}; use one of {FORMATS}")
    t = Path(test) if test is not None else _test_sibling(p)
    if not t.is_file():
        raise FileNotFoundError(f"test file not found: {t} (beside the train file {p.name})")
    if t.suffix != p.suffix:
        raise ValueError(f"train {p.name} and test {t.name} must have the same format")
    return p, t


def read_ts(path: Path) -> Sequences:
    try:
        from aeon.datasets import load_from_ts_file
    except ImportError:
        raise ImportError(f'reading {path.name} (.ts format) needs aeon: pip install "rnnslim[aeon]"') from None
    X, y = load_from_ts_file(str(path))  # (N, C, T) array or N arrays (C, T_i); labels (N,)
    if y is None:
        raise ValueError(f"{path}: the file has no class labels (@classLabel true)")
    seqs = [np.asarray(x, dtype=np.float64).T for x in X]  # (T_i, C)
    return seqs, [str(v) for v in y], [f"dim_{i}" for i in range(seqs[0].shape[1])] if seqs else []


def read_ucr_tsv(path: Path) -> Sequences:
    seqs, labels = [], []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            cells = line.strip().split("\t") if "\t" in line else line.strip().split(",")
            if not cells or cells == [""]:
                continue
            try:
                values = np.array([float(v) if v.strip() else math.nan for v in cells[1:]])
            except ValueError:
                raise ValueError(f"{path}:{n}: non-numeric value (UCR .tsv: label then numbers)") from None
            finite = np.flatnonzero(~np.isnan(values))
            if finite.size == 0:
                raise ValueError(f"{path}:{n}: the sequence has no values")
            seqs.append(values[: finite[-1] + 1, None])  # drop trailing NaN padding -> (T, 1)
            labels.append(cells[0].strip())
    return seqs, labels, ["value"]


def read_long_csv(path: Path, cfg: ClassifyConfig) -> Sequences:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise ValueError(f"{path}: empty CSV file")
    header = [h.strip() for h in rows[0]]
    if len(set(header)) != len(header):
        raise ValueError(f"{path}: duplicate column names in the header {header}")
    for col in (cfg.id_column, cfg.label_column):
        if col not in header:
            raise ValueError(f"{path}: missing column {col!r}; the long CSV layout needs "
                             f"{cfg.id_column},[{cfg.time_column},]features...,{cfg.label_column} (header: {header})")
    special = {cfg.id_column, cfg.label_column, cfg.time_column}
    features = list(cfg.features) if cfg.features is not None else [h for h in header if h not in special]
    missing = [c for c in features if c not in header]
    if missing or not features:
        raise ValueError(f"{path}: feature columns {missing or features} not found (header: {header})")
    fi = [header.index(c) for c in features]
    ii, li = header.index(cfg.id_column), header.index(cfg.label_column)
    ti = header.index(cfg.time_column) if cfg.time_column in header else None
    groups: dict[str, list] = {}  # id -> [label, [(t, values)]]
    for n, r in enumerate(rows[1:], 2):
        if not r:
            continue
        if len(r) > len(header):
            raise ValueError(f"{path}:{n}: {len(r)} cells, the header names {len(header)} columns")
        try:
            vals = [float(r[i]) if r[i].strip() else math.nan for i in fi]
            t = float(r[ti]) if ti is not None else n
        except (ValueError, IndexError):
            raise ValueError(f"{path}:{n}: a feature or time value is not a number or is missing: {r}") from None
        g = groups.setdefault(r[ii], [r[li], []])
        if g[0] != r[li]:
            raise ValueError(f"{path}:{n}: sequence {r[ii]!r} has two labels ({g[0]!r}, {r[li]!r})")
        g[1].append((t, vals))
    seqs = [np.array([v for _, v in sorted(steps, key=lambda s: s[0])], dtype=np.float64) for _, steps in groups.values()]
    return seqs, [g[0] for g in groups.values()], features


def read_sequences(path: Path, cfg: ClassifyConfig) -> Sequences:
    if path.suffix == ".ts":
        out = read_ts(path)
    elif path.suffix == ".tsv":
        out = read_ucr_tsv(path)
    else:
        out = read_long_csv(path, cfg)
    if not out[0]:
        raise ValueError(f"{path}: no sequences")
    widths = {s.shape[1] for s in out[0]}
    if len(widths) != 1:
        raise ValueError(f"{path}: sequences have different feature counts {sorted(widths)}")
    return out


# --- splits ------------------------------------------------------------------------------
def sort_classes(labels: list[str]) -> list[str]:
    uniq = set(labels)
    try:
        return sorted(uniq, key=float)
    except ValueError:
        return sorted(uniq)


def stratified_carve(labels: list[str], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(train indices, valid indices): round(fraction * n_c) of each class to valid, >= 1 left."""
    rng = np.random.default_rng(seed)
    train, valid = [], []
    for c in sort_classes(labels):
        idx = np.array([i for i, y in enumerate(labels) if y == c])
        idx = idx[rng.permutation(len(idx))]
        k = min(int(round(fraction * len(idx))), len(idx) - 1)
        valid += idx[:k].tolist()
        train += idx[k:].tolist()
    if not valid:
        raise ValueError(f"the training file has too few sequences per class to carve a validation split "
                         f"with valid_fraction={fraction}")
    return sorted(train), sorted(valid)


class _Split:
    """One split, front-padded: x (N, T_max, F) with zeros before each sequence's start."""

    def __init__(self, seqs: list[np.ndarray], y: list[int], scaler: Standardizer) -> None:
        self.lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)  # (N,)
        self.y = torch.tensor(y, dtype=torch.long)  # (N,)
        t_max, f = int(self.lengths.max()), scaler.n_features
        x = np.zeros((len(seqs), t_max, f), dtype=np.float32)
        for i, s in enumerate(seqs):
            x[i, t_max - len(s):] = np.nan_to_num(scaler.apply(s), nan=0.0)  # missing -> feature mean
        self.x = torch.from_numpy(x)

    def __len__(self) -> int:
        return len(self.y)

    def batch(self, idx: Tensor) -> Batch:
        """Sequences idx, front-padded to their longest: inputs (L, B, F), targets (B,)."""
        L = int(self.lengths[idx].max())
        return Batch(self.x[idx, self.x.shape[1] - L:].transpose(0, 1), self.y[idx])


class ClassifyTask(Task):
    name = "classify"
    stateful = False
    primary_metric = "accuracy"
    higher_is_better = True
    tie_metric = "loss"  # few validation sequences: many steps tie on accuracy (rnnslim.train.best)

    def __init__(self, path: str | Path, test: str | Path | None = None, classes: list[str] | None = None,
                 scaling: dict | None = None, **options) -> None:
        self.config = ClassifyConfig(**options)
        self.files = dict(zip(("train", "test"), find_train_test(path, test)))
        self.given = path  # a data set name, a folder or a file (task meta: remembered_data)
        train_x, train_y, self.features = read_sequences(self.files["train"], self.config)
        test_x, test_y, test_features = read_sequences(self.files["test"], self.config)
        if len(test_features) != len(self.features) or test_x[0].shape[1] != train_x[0].shape[1]:
            raise ValueError(f"train has {train_x[0].shape[1]} features but test has {test_x[0].shape[1]}")
        self.classes = list(classes) if classes is not None else sort_classes(train_y)
        index = {c: i for i, c in enumerate(self.classes)}
        for split, ys in (("train", train_y), ("test", test_y)):
            unknown = sorted(set(ys) - index.keys())
            if unknown:
                raise ValueError(f"{self.files[split]}: labels {unknown[:10]} are not among the classes "
                                 f"{self.classes[:10]}{'...' if len(self.classes) > 10 else ''}")
        tr, va = stratified_carve(train_y, self.config.valid_fraction, self.config.seed)
        n_feat = train_x[0].shape[1]
        if scaling is None:
            self.scaler = Standardizer.fit(np.concatenate([train_x[i] for i in tr]))
        else:
            self.scaler = Standardizer.from_meta(scaling, n_feat, "features")
        self.data = {
            "train": _Split([train_x[i] for i in tr], [index[train_y[i]] for i in tr], self.scaler),
            "valid": _Split([train_x[i] for i in va], [index[train_y[i]] for i in va], self.scaler),
            "test": _Split(test_x, [index[y] for y in test_y], self.scaler),
        }

    @classmethod
    def from_data(cls, data: str | Path | None = None, meta: dict | None = None, test: str | Path | None = None,
                  **options) -> ClassifyTask:
        """Uniform factory entry (rnnslim.tasks.make_task); a model's meta supplies the classes,
        feature columns, scaling and valid carve."""
        meta = meta or {}
        if data is None and test is None:
            from rnnslim.tasks.remembered_data import remembered_data

            data, test = remembered_data(meta, find_train_test) or (None, None)  # where the model's training data came from
        if data is None:
            raise ValueError("the classify task needs data: a directory or train file (.ts, .tsv or long .csv)")
        merged = {**meta.get("config", {}), **options}
        return cls(data, test=test, classes=meta.get("classes"), scaling=meta.get("scaling"), **merged)

    @property
    def n_features(self) -> int:
        return self.scaler.n_features

    def meta(self) -> dict:
        cfg = self.config.model_dump(mode="json")
        if self.files["train"].suffix == ".csv":
            cfg["features"] = self.features  # select the same columns by name when reloaded
        return {"task": self.name, "classes": self.classes, "features": self.features,
                "scaling": self.scaler.to_meta(), "config": cfg,
                **data_record(self.given, self.files["train"], self.files["test"])}

    def split(self, split: str) -> _Split:
        self.check_split(split)
        return self.data[split]

    def model_spec(self, cell="lstm", hidden_size=128, num_layers=2, dropout=0.0, embed_size=None,
                   tie_weights=False) -> ModelSpec:
        if tie_weights:
            raise ValueError("tie_weights applies to language models only, not to classification")
        return ModelSpec(cell=cell, input_kind=InputKind.LINEAR, input_size=self.n_features,
                         embed_size=embed_size or hidden_size, layers=[LayerShape(hidden_size=hidden_size)] * num_layers,
                         output_size=len(self.classes), dropout=dropout, readout=Readout.LAST)

    def batches(self, split, batch_size, seq_len=0, shuffle=False, generator=None) -> Iterator[Batch]:
        """Whole sequences (seq_len is ignored): inputs (L, B, F) front-padded, targets (B,)."""
        s = self.split(split)
        order = torch.randperm(len(s), generator=generator) if shuffle else torch.arange(len(s))
        for i in range(0, len(s), batch_size):
            yield s.batch(order[i : i + batch_size])

    def loss(self, outputs: Tensor, batch: Batch) -> Tensor:
        return F.cross_entropy(outputs.float(), batch.targets)

    def check_model(self, model: SequenceModel) -> None:
        spec = model.spec
        if spec.input_kind is InputKind.EMBEDDING:
            raise ValueError("the model reads token ids, but classification feeds float features")
        if spec.input_size != self.n_features:
            raise ValueError(f"the model expects {spec.input_size} features per step, the data has {self.n_features}")
        if spec.output_size != len(self.classes):
            raise ValueError(f"the model predicts {spec.output_size} classes, the data has {len(self.classes)}")
        if spec.readout is Readout.ALL:
            raise ValueError("classification needs a model with readout 'last' or 'mean', not 'all'")
        theirs = (getattr(model, "task_meta", None) or {}).get("classes")
        if theirs is not None and list(theirs) != self.classes:
            raise ValueError(f"the model was trained on classes {list(theirs)[:10]}, the task has "
                             f"{self.classes[:10]}; build the task from the model (rnnslim.tasks.task_for_model)")

    @torch.no_grad()
    def evaluate(self, model, split="valid", max_steps=None) -> dict:
        """Accuracy and mean cross-entropy over the split (or its first max_steps sequences),
        equal-length sequences batched together without padding."""
        self.check_model(model)
        n = self.evaluated_count(split, max_steps)
        was_training = model.training
        model.eval()
        loss_sum, correct, seconds = 0.0, 0, 0.0
        tally = evaluation_tally(model)  # None unless e.g. the model has early exits with a calibrated threshold
        batches = self.equal_length_batches(split, max_steps, model_device(model))
        for b in track(batches, desc=f"evaluate {split}", total=self.batch_count(split, max_steps)):
            t0 = time.perf_counter()
            logits, _ = model(b.inputs)  # (B, C)
            seconds += time.perf_counter() - t0
            loss_sum += F.cross_entropy(logits.float(), b.targets, reduction="sum").item()
            correct += int((logits.argmax(-1) == b.targets).sum())
            if tally is not None:
                tally.add(b)
        model.train(was_training)
        out = {"loss": loss_sum / n, "accuracy": correct / n, "sequences": n}
        return tally.metrics(out, seconds) if tally is not None else out

    def batch_count(self, split: str, max_steps: int | None = None) -> int:
        """How many batches equal_length_batches yields (for a progress bar's ETA)."""
        lengths = self.split(split).lengths[: self.evaluated_count(split, max_steps)]
        return sum(-(-int(k) // EVAL_BATCH) for k in torch.unique(lengths, return_counts=True)[1])

    def evaluated_count(self, split: str, max_steps: int | None = None) -> int:
        """Sequences evaluate() reads: the split, or its first max_steps sequences."""
        s = self.split(split)
        return min(len(s), max_steps) if max_steps else len(s)

    def equal_length_batches(self, split: str, max_steps: int | None = None, device=None) -> Iterator[Batch]:
        """The split's first max_steps sequences (all when None) in batches of equal length
        (no padding, at most EVAL_BATCH each): inputs (L, B, F), targets (B,)."""
        s = self.split(split)
        lengths = s.lengths[: self.evaluated_count(split, max_steps)]
        for L in torch.unique(lengths).tolist():
            idx = torch.nonzero(lengths == L).squeeze(1)
            for i in range(0, len(idx), EVAL_BATCH):
                b = s.batch(idx[i : i + EVAL_BATCH])  # all of length L: no padding
                yield b.to(device) if device is not None else b
