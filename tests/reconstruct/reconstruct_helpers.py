"""Small models and batches for the reconstruction tests."""

import torch

from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, SequenceModel
from rnnslim.tasks.base import Batch

VOCAB = 17


def small_model(cell: str = "lstm", hidden=(24, 16), seed: int = 0) -> SequenceModel:
    torch.manual_seed(seed)
    spec = ModelSpec(cell=cell, input_kind=InputKind.EMBEDDING, input_size=VOCAB, embed_size=12,
                     layers=[LayerShape(hidden_size=h) for h in hidden], output_size=VOCAB, dropout=0.0)
    return SequenceModel(spec).eval()


def batches(n: int = 6, T: int = 20, B: int = 4, seed: int = 1) -> list[Batch]:
    g = torch.Generator().manual_seed(seed)
    return [Batch(torch.randint(0, VOCAB, (T, B), generator=g), torch.randint(0, VOCAB, (T, B), generator=g))
            for _ in range(n)]


@torch.no_grad()
def logits_error(model, reference, data) -> float:
    """Mean squared difference of the two models' logits over `data`."""
    err = 0.0
    for b in data:
        err += float((model(b.inputs)[0] - reference(b.inputs)[0]).pow(2).mean())
    return err / len(data)
