"""C export of a CRNN front end (windowed int8 input projection + activation table): NAME_run
is bit-exact against IntegerRunner, the export is whole-sequence only (no NAME_step), its
manifest records the window, and rnnslim.runtime runs it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from compilers import needs_cc
from int8_models import crnn_model, feature_model

from rnnslim.export.c_check import check_on_host, harness_mode
from rnnslim.export.c_source import export_c
from rnnslim.quantize.int8 import IntegerRunner
from rnnslim.runtime.exported import ExportedModel

CASES = {"relu_k5_p2_last": ("gru", "relu", 5, 2, "last"), "gelu_k3_p0_all": ("lstm", "gelu", 3, 0, "all"),
         "tanh_k1_all": ("gru", "tanh", 1, 0, "all"), "sigmoid_k2_p3_all": ("gru", "sigmoid", 2, 3, "all")}


def _streams(n: int = 4, T: int = 9, F: int = 6) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((n, T, F)).astype(np.float32)


@needs_cc
@pytest.mark.parametrize("case", CASES)
def test_c_run_is_bit_exact(case, tmp_path):
    cell, act, window, padding, readout = CASES[case]
    q = crnn_model(cell, act, window, padding, readout, hidden=(8,))
    out = tmp_path / "crnn"
    facts = export_c(q, out, name="crnn")
    manifest = json.loads((out / "model.json").read_text())
    windowed = window > 1 or padding > 0
    assert manifest["features"] == 6 and manifest.get("input_window", 1) == window
    assert ("input_window" in manifest) is windowed  # other exports' manifests are as before
    header = (out / "crnn.h").read_text()
    assert ("int crnn_step(" in header) is not windowed
    assert harness_mode(manifest) == ("sequence" if windowed else "step")
    runner = IntegerRunner(q)
    res = check_on_host(runner, out, _streams(), mode="sequence")
    assert res.ok and res.streams == 4, res.to_dict() if hasattr(res, "to_dict") else res
    assert facts.workspace_fixed_bytes + 9 * facts.workspace_bytes_per_step >= runner.workspace_bytes(9)
    exported = ExportedModel(out)
    x = _streams()[1]
    assert np.array_equal(exported.run_sequence(x), runner.run_sequence(torch.from_numpy(x)).numpy())
    if windowed:
        with pytest.raises(ValueError, match="windowed input"):
            exported.step(x[0])
    else:  # an activation alone streams: the step path is checked too
        assert check_on_host(runner, out, _streams(), mode="step").ok


def test_plain_feature_manifest_has_no_window_fields(tmp_path):
    export_c(feature_model("gru", "linear", hidden=(8,), F=2, out=1), tmp_path / "f", name="f")
    manifest = json.loads((tmp_path / "f" / "model.json").read_text())
    assert "input_window" not in manifest and "input_padding" not in manifest


def _float_crnn(act: str = "relu", window: int = 5, padding: int = 2):
    from rnnslim.models.sequence import ModelSpec, SequenceModel

    return SequenceModel(ModelSpec(cell="gru", input_kind="linear", input_size=6, embed_size=8,
                                   layers=[{"hidden_size": 8}], output_size=4, readout="last", input_window=window,
                                   input_padding=padding, input_activation=act)).eval()


def test_per_step_exporters_refuse_what_they_cannot_run(tmp_path):
    from rnnslim.export.c_float import export_c_float
    from rnnslim.export.onnx import step_layout

    with pytest.raises(ValueError, match=r"export_c_float does not support a windowed input.*--format c"):
        export_c_float(_float_crnn(), tmp_path / "a", name="a")
    with pytest.raises(ValueError, match=r"export_c_float does not support the input activation \(gelu\)"):
        export_c_float(_float_crnn("gelu", 1, 0), tmp_path / "b", name="b")
    with pytest.raises(ValueError, match="a streaming step export does not support a windowed input"):
        step_layout(_float_crnn())
    assert step_layout(_float_crnn("tanh", 1, 0)).input_kind == "features"  # an activation alone streams
