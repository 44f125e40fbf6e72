"""Tiny LSTM / GRU language models for the transform tests (a helper module like
compilers.py, imported by name: tests/ is on sys.path through conftest.py; a test module
importing `conftest` by name gets whichever conftest was imported last)."""

from __future__ import annotations

import torch

from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, SequenceModel


def tiny_model(cell: str = "lstm", hidden=(24, 20), vocab: int = 11, seed: int = 0) -> SequenceModel:
    """A seeded LSTM / GRU character LM over `vocab` letters (embedding 12), in eval mode."""
    spec = ModelSpec(cell=cell, input_kind=InputKind.EMBEDDING, input_size=vocab, embed_size=12,
                     layers=[LayerShape(hidden_size=h) for h in hidden], output_size=vocab)
    torch.manual_seed(seed)
    m = SequenceModel(spec).eval()
    m.task_meta = {"task": "charlm", "vocab": [chr(97 + i) for i in range(vocab)]}
    return m
