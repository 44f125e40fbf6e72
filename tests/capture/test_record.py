"""layout_record lets user_view / evaluate call a SequenceModel that was not captured (an
import, a model rnnslim trained) in batch-first layout."""

from __future__ import annotations

import torch

from rnnslim.capture import layout_record, user_view
from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, Readout, SequenceModel


def test_batch_first_view_of_a_plain_model():
    torch.manual_seed(0)
    spec = ModelSpec(cell="lstm", input_kind=InputKind.LINEAR, input_size=3, embed_size=4,
                     layers=[LayerShape(hidden_size=5)] * 2, output_size=2, readout=Readout.ALL)
    model = SequenceModel(spec).eval()
    model.capture_info = layout_record(model, "KerasSequential")
    x = torch.randn(2, 7, 3)  # (B, T, F)
    with torch.no_grad():
        want = model(x.transpose(0, 1))[0].transpose(0, 1)
        assert torch.equal(user_view(model)(x), want)
    ids_spec = spec.model_copy(update={"input_kind": InputKind.EMBEDDING, "input_size": 9, "readout": Readout.LAST})
    lm = SequenceModel(ids_spec).eval()
    lm.capture_info = layout_record(lm, "OnnxModel", batch_first=False)
    ids = torch.randint(0, 9, (6, 3))  # (T, B)
    with torch.no_grad():
        assert torch.equal(user_view(lm)(ids), lm(ids)[0])
