"""The transform tests' fixtures: both cells, a tiny character task (tiny models: transform_models.py)."""

from __future__ import annotations

import pytest

TEXT = "the quick brown fox jumps over the lazy dog. " * 30 + "pack my box with five dozen liquor jugs! " * 30


@pytest.fixture(params=["lstm", "gru"])
def cell(request) -> str:
    return request.param


@pytest.fixture
def tiny_task():
    from rnnslim.tasks.charlm import CharLMTask

    return CharLMTask(text=TEXT)
