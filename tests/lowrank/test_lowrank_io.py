"""A factorized model saves, loads and is validated like any other, and is smaller on disk."""

from __future__ import annotations

import json

import pytest
import torch
from lowrank_models import inputs, make, out

from rnnslim.io.errors import ModelFormatError
from rnnslim.io.format import artifact_bytes, load_model, save_model
from rnnslim.lowrank import LowRank, ToLSTMP, lowrank_, to_lstmp_


@pytest.mark.parametrize("cell, edit", [
    ("lstm", lambda m: lowrank_(m, LowRank(targets=["input", "output"], rank=3))),
    ("lstm", lambda m: to_lstmp_(m, ToLSTMP(proj_size=(5, 4)))),
    ("gru", lambda m: lowrank_(m, LowRank(targets=["input", "output"], rank=3, scope="per_gate"))),
])
def test_round_trip_and_smaller_on_disk(tmp_path, cell, edit):
    m = make(cell, hidden=(32, 32), embed=24)
    save_model(m, tmp_path / "dense")
    edit(m)
    save_model(m, tmp_path / "low")
    back = load_model(tmp_path / "low")
    assert back.spec == m.spec
    x = inputs(m)
    torch.testing.assert_close(out(back, x), out(m, x), atol=0, rtol=0)
    assert artifact_bytes(tmp_path / "low") < 0.8 * artifact_bytes(tmp_path / "dense")
    assert back.history[-1]["op"] in ("lowrank", "to_lstmp")


def test_manifest_of_an_unfactorized_model_has_no_rank_fields(tmp_path):
    save_model(make(), tmp_path / "m")
    spec = json.loads((tmp_path / "m" / "model.json").read_text())["spec"]
    assert "decoder_rank" not in spec and all("input_rank" not in ly for ly in spec["layers"])


def test_a_tampered_rank_is_refused(tmp_path):
    m = make()
    lowrank_(m, LowRank(targets=["input", "output"], rank=3))
    save_model(m, tmp_path / "m")
    path = tmp_path / "m" / "model.json"
    meta = json.loads(path.read_text())
    meta["spec"]["layers"][1]["input_rank"] = 4  # the stored bottleneck has 3 rows
    path.write_text(json.dumps(meta))
    with pytest.raises(ModelFormatError, match=r"weight_ih_l0.shape is \[40, 3\], the architecture says \[40, 4\]"):
        load_model(tmp_path / "m")
    meta["spec"]["decoder_rank"] = "3"
    path.write_text(json.dumps(meta))
    with pytest.raises(ModelFormatError, match="decoder_rank must be an integer"):
        load_model(tmp_path / "m")
