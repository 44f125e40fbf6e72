"""Small models for the low-rank tests (a helper module like compilers.py, imported by name:
tests/ is on sys.path through conftest.py)."""

from __future__ import annotations

import torch

from rnnslim.models.sequence import LayerShape, ModelSpec, SequenceModel


def make(cell="lstm", kind="embedding", hidden=(12, 10), proj=0, embed=8, seed=0):
    """A small float SequenceModel (9 tokens or features in, 7 out), seeded, in eval mode."""
    torch.manual_seed(seed)
    spec = ModelSpec(cell=cell, input_kind=kind, input_size=9, embed_size=9 if kind == "identity" else embed,
                     layers=[LayerShape(hidden_size=h, proj_size=proj) for h in hidden], output_size=7)
    return SequenceModel(spec).eval()


def inputs(model, T=7, B=3):
    """(T, B) token ids or (T, B, F) features for `model`, seeded."""
    g = torch.Generator().manual_seed(1)
    if model.spec.input_kind.value == "embedding":
        return torch.randint(0, model.spec.input_size, (T, B), generator=g)
    return torch.randn(T, B, model.spec.input_size, generator=g)


def out(model, x):
    """model(x)'s outputs without gradients."""
    with torch.no_grad():
        return model(x)[0]
