"""Shared fixtures. ../shared (reference models + data) sits beside the project:
missing it fails the run under CI=true and skips the dependent tests elsewhere."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

SHARED = Path(__file__).resolve().parents[1].parent / "shared"

try:  # property tests: no timing-based failures on a loaded machine (no deadline, no "data generation too slow")
    from hypothesis import HealthCheck, settings

    settings.register_profile("rnnslim", deadline=None, suppress_health_check=[HealthCheck.too_slow])
    settings.load_profile("rnnslim")
except ImportError:  # hypothesis is a dev extra; the tests that use it import it themselves
    pass


def _require_shared(sub: str) -> Path:
    p = SHARED / sub
    if not p.exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{p} is missing: CI needs ../shared beside the project")
        pytest.skip(f"{p} not found (../shared beside the project holds the reference models and data)")
    return p


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return _require_shared("")


@pytest.fixture(scope="session")
def shared_models() -> Path:
    return _require_shared("models")


@pytest.fixture(scope="session")
def shakespeare() -> Path:
    return _require_shared("data/tinyshakespeare.txt")


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    yield


@pytest.fixture
def tiny_classify_task(tmp_path):
    """A factory: `tiny_classify_task(train=40, test=10)` is a ClassifyTask over that many
    synthetic sequences ('up' / 'down' ramps, 2 features, lengths 4..10; classify_data.py)
    written to tmp_path/train.csv and tmp_path/test.csv."""
    from classify_data import make_sequences, write_long_csv

    from rnnslim.tasks.classify import ClassifyTask

    def make(train: int = 40, test: int = 10, **task_kw) -> ClassifyTask:
        write_long_csv(tmp_path / "train.csv", make_sequences(train, 1))
        write_long_csv(tmp_path / "test.csv", make_sequences(test, 2), seed=1)
        return ClassifyTask(tmp_path / "train.csv", test=tmp_path / "test.csv", **task_kw)

    return make
