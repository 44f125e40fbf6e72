"""Integer models are evaluated in the C kernel (same loss as the torch reference, faster)."""

from __future__ import annotations

import torch
from int8_models import integer_model, needs_kernel

from rnnslim.quantize.int8 import kernel_eval
from rnnslim.tasks.charlm import stream_nll


@needs_kernel
def test_stream_nll_uses_the_kernel_and_agrees_with_torch(monkeypatch):
    q = integer_model("lstm", hidden=(40, 24), vocab=30, out=30)
    d = torch.randint(0, 30, (3000,), generator=torch.Generator().manual_seed(0))
    fast = stream_nll(q, d, chunk=512)
    monkeypatch.setattr(kernel_eval, "kernel_runner", lambda model, why=None: None)
    slow = stream_nll(q, d, chunk=512)
    assert fast["tokens"] == slow["tokens"] == 2999
    assert abs(fast["loss_nats"] - slow["loss_nats"]) < 1e-6  # same logits; only the summation order differs


def test_float_model_keeps_the_torch_path():
    from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, SequenceModel

    m = SequenceModel(ModelSpec(cell="gru", input_kind=InputKind.EMBEDDING, input_size=5, embed_size=4,
                                layers=[LayerShape(hidden_size=8)], output_size=5))
    why: list[str] = []
    assert kernel_eval.kernel_runner(m, why) is None and why == []
