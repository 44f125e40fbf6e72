"""Fixtures shared by the pipeline tests: one small character-LM task and tiny models for it."""

from __future__ import annotations

import pytest
import torch

from rnnslim.models.sequence import SequenceModel
from rnnslim.tasks.charlm import CharLMTask


@pytest.fixture(scope="module")
def task():
    """The stdlib corpus (the same text on every machine), its first 20,000 characters."""
    return CharLMTask(max_chars=20000)


@pytest.fixture
def tiny_lm(task):
    """A factory: `tiny_lm(num_layers=1, cell="lstm")` is a seeded 16-unit SequenceModel for
    `task`, with its task_meta set (what run_pipeline records)."""

    def make(num_layers: int = 1, cell: str = "lstm") -> SequenceModel:
        torch.manual_seed(0)
        m = SequenceModel(task.model_spec(cell=cell, hidden_size=16, num_layers=num_layers))
        m.task_meta = task.meta()
        return m

    return make
