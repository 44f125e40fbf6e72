"""ModelSpec.output_activation: left out of the stored spec while none (older manifests load and
dump as before), round-trips otherwise; apply_output_activation works over the last axis."""

from __future__ import annotations

import torch

from rnnslim.models.sequence import (
    InputKind, LayerShape, ModelSpec, OutputActivation, SequenceModel, apply_output_activation,
)


def _spec(**kw) -> ModelSpec:
    return ModelSpec(cell="gru", input_kind=InputKind.IDENTITY, input_size=3, embed_size=3,
                     layers=[LayerShape(hidden_size=4)], output_size=5, **kw)


def test_default_is_not_stored_and_others_round_trip():
    assert "output_activation" not in _spec().model_dump(mode="json")
    spec = _spec(output_activation=OutputActivation.LOG_SOFTMAX)
    data = spec.model_dump(mode="json")
    assert data["output_activation"] == "log_softmax" and ModelSpec.model_validate(data) == spec


def test_forward_returns_logits_and_the_caller_applies_the_activation():
    torch.manual_seed(0)
    model = SequenceModel(_spec(output_activation=OutputActivation.SOFTMAX)).eval()
    x = torch.randn(6, 2, 3)
    logits = model(x)[0]  # (T, B, O): forward ignores the activation (as the integer kernel and C do)
    probs = apply_output_activation(logits, model.spec.output_activation)
    assert torch.allclose(probs.sum(-1), torch.ones(6, 2)) and torch.equal(probs, logits.softmax(-1))
    assert torch.equal(apply_output_activation(logits, "log_softmax"), logits.log_softmax(-1))
    assert torch.equal(apply_output_activation(logits, "none"), logits)
