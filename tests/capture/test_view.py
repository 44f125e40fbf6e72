"""user_view: the user's argument names, init_hidden with the captured sizes, GRU states."""

from __future__ import annotations

import pytest
import torch

from rnnslim.capture import capture, user_view
from tests.capture.user_modules import ExamplesWordLM


def test_init_hidden_keywords_and_gru_state():
    torch.manual_seed(0)
    m = ExamplesWordLM("GRU", nlayers=3).eval()
    x = torch.randint(0, 30, (6, 2))
    view = user_view(capture(m, (x, m.init_hidden(2))))
    h0 = view.init_hidden(2)
    assert h0.shape == (3, 2, 12) and not h0.any()
    with torch.no_grad():
        out, h = view(input=x, hidden=h0)
        ref, ref_h = m(x, h0)
        out2, h2 = view(x, h)  # the examples' loop carries the state from batch to batch
        ref2, _ = m(x, ref_h)
    assert torch.allclose(out, ref, atol=1e-5) and torch.allclose(out2, ref2, atol=1e-5)
    with pytest.raises(TypeError, match="no argument 'hiden'"):
        view(x, hiden=h0)


def test_a_model_without_capture_info_is_refused():
    from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, SequenceModel

    spec = ModelSpec(cell="gru", input_kind=InputKind.IDENTITY, input_size=3, embed_size=3,
                     layers=[LayerShape(hidden_size=4)], output_size=2)
    with pytest.raises(ValueError, match="no capture_info"):
        user_view(SequenceModel(spec))


def test_pruned_and_shortened_captured_models_keep_the_users_loop_working():
    from rnnslim.prune.structured.cut import StructuredPruning, prune_units_
    from rnnslim.prune.structured.layers import remove_layers_

    torch.manual_seed(1)
    m = ExamplesWordLM("LSTM", nlayers=3).eval()
    x = torch.randint(0, 30, (6, 3))
    model = capture(m, (x, m.init_hidden(3)))
    prune_units_(model, StructuredPruning(ratio=0.5))
    remove_layers_(model, [1])
    view = user_view(model)
    hidden = view.init_hidden(3)  # the user's init_hidden would still say 3 x 12
    assert hidden[0].shape == (2, 3, 6) and hidden[1].shape == (2, 3, 6)
    with torch.no_grad():
        out, (h, c) = view(x, hidden)
        out2, _ = view(x, (h, c))  # carried from batch to batch
    assert out.shape == out2.shape == (18, 30) and h.shape == (2, 3, 6)
