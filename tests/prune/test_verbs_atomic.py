"""Every in-place verb is all or nothing: a failure half way leaves the model exactly as before."""

from __future__ import annotations

import pytest
import torch
from user_models import WordLM

from rnnslim.prune import NMPruning, UnstructuredPruning, prune_nm_, prune_unstructured_, remove_layers_
from rnnslim.quantize.int8 import Int8Config, quantize_int8_


def _snapshot(m):
    return {k: v.clone() for k, v in m.state_dict().items()}, list(getattr(m, "history", []) or [])


def _same(m, snap) -> bool:
    sd, hist = snap
    now = m.state_dict()
    return list(now) == list(sd) and all(torch.equal(sd[k], now[k]) for k in sd) and \
        list(getattr(m, "history", []) or []) == hist


@pytest.mark.parametrize("verb", ["unstructured", "nm", "remove_layers", "int8"])
def test_failure_half_way_restores_the_model(monkeypatch, verb):
    torch.manual_seed(0)
    m = WordLM()
    m.history = [{"op": "trained"}]
    snap = _snapshot(m)
    boom = RuntimeError("simulated failure half way")
    if verb == "unstructured":
        import rnnslim.prune.unstructured as mod

        real = mod.finish

        def half(model, masks, *a, **k):  # masks applied and recorded, then a failure
            real(model, masks, *a, **k)
            raise boom
        monkeypatch.setattr(mod, "finish", half)
        call = lambda: prune_unstructured_(m, UnstructuredPruning(sparsity=0.5))  # noqa: E731
    elif verb == "nm":
        import rnnslim.prune.patterns as mod

        real = mod.finish

        def half(model, masks, *a, **k):
            real(model, masks, *a, **k)
            raise boom
        monkeypatch.setattr(mod, "finish", half)
        call = lambda: prune_nm_(m, NMPruning(n=2, m=4))  # noqa: E731
    elif verb == "remove_layers":
        call = lambda: remove_layers_(m, ["rnn[1]"], example_inputs=(torch.randint(0, 50, (3, 2)), "bad"))  # noqa: E731
    else:
        import rnnslim.quantize.int8.user_modules as mod

        def fail(*a, **k):  # the recurrent modules were swapped already
            raise boom
        monkeypatch.setattr(mod.Int8Linear, "from_float", fail)
        call = lambda: quantize_int8_(m, Int8Config(mode="dynamic"))  # noqa: E731
    with pytest.raises(Exception):
        call()
    assert _same(m, snap) and type(m.rnn).__name__ == "LSTM"
