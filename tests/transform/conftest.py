"""Tiny LSTM / GRU language models and a tiny character task for the transform tests."""

from __future__ import annotations

import pytest
import torch

from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, SequenceModel

TEXT = "the quick brown fox jumps over the lazy dog. " * 30 + "pack my box with five dozen liquor jugs! " * 30


def tiny_model(cell: str = "lstm", hidden=(24, 20), vocab: int = 11, seed: int = 0) -> SequenceModel:
    spec = ModelSpec(cell=cell, input_kind=InputKind.EMBEDDING, input_size=vocab, embed_size=12,
                     layers=[LayerShape(hidden_size=h) for h in hidden], output_size=vocab)
    torch.manual_seed(seed)
    m = SequenceModel(spec).eval()
    m.task_meta = {"task": "charlm", "vocab": [chr(97 + i) for i in range(vocab)]}
    return m


@pytest.fixture(params=["lstm", "gru"])
def cell(request) -> str:
    return request.param


@pytest.fixture
def tiny_task():
    from rnnslim.tasks.charlm import CharLMTask

    return CharLMTask(text=TEXT)
