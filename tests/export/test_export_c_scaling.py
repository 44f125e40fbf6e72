"""A feature model's C export states the input (and a forecaster's output) scaling its task
recorded: in the manifest, in the header's comment, and as const arrays the caller applies."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import torch

from rnnslim.export.c_scaling import model_scaling
from rnnslim.export.c_source import export_c
from rnnslim.models.sequence import LayerShape, ModelSpec, SequenceModel
from rnnslim.quantize.int8 import Int8Config, Int8Mode, quantize_int8_
from rnnslim.runtime import read_manifest
from rnnslim.runtime.build import CompilerUnavailable, find_compiler

MEAN, STD = [1.5, -2.0, 100.0], [0.5, 3.0, 25.0]


def _int8_features(outputs: int = 4, scaling=None):
    torch.manual_seed(0)
    spec = ModelSpec(cell="lstm", input_kind="linear", input_size=3, embed_size=5, layers=[LayerShape(hidden_size=8)],
                     output_size=outputs, readout="last")
    q = quantize_int8_(SequenceModel(spec).eval(), Int8Config(mode=Int8Mode.INTEGER),
                       calibration=[torch.randn(10, 2, 3)])
    q.task_meta = {"task": "classify", "scaling": scaling} if scaling is not None else {"task": "classify"}
    return q


def test_a_classifier_states_its_feature_scaling(tmp_path):
    facts = export_c(_int8_features(scaling={"mean": MEAN, "std": STD}), tmp_path / "c", name="kws")
    meta = read_manifest(tmp_path / "c")
    assert meta["input_scaling"] == {"mean": MEAN, "std": STD} and meta["output_scaling"] is None
    header = (tmp_path / "c" / "kws.h").read_text()
    assert "x[f] = (raw[f] - kws_input_mean[f]) / kws_input_std[f]" in header.replace("\n * ", " ")
    assert "extern const float kws_input_mean[KWS_FEATURES];" in header
    source = (tmp_path / "c" / "kws.c").read_text()
    line = next(ln for ln in source.splitlines() if ln.startswith("const float kws_input_std[KWS_FEATURES]"))
    values = [float.fromhex(v.strip().rstrip("f")) for v in line.split("{")[1].split("}")[0].split(",")]
    assert np.array_equal(np.float32(values), np.float32(STD))
    assert facts.const_bytes == export_c(_int8_features(), tmp_path / "plain", name="kws").const_bytes + 4 * 6
    try:
        cc = find_compiler()
    except CompilerUnavailable:
        pytest.skip("no C compiler here")
    proc = subprocess.run([cc, "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-Wconversion",
                           "-Wmissing-prototypes", "-Wdouble-promotion", "-c", str(tmp_path / "c" / "kws.c"), "-o",
                           str(tmp_path / "kws.o")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_a_forecaster_also_states_its_output_scaling_per_output():
    targets = {"mean": [10.0, 20.0], "std": [2.0, 4.0]}
    q = _int8_features(outputs=6, scaling={"inputs": {"mean": MEAN, "std": STD}, "targets": targets})
    inputs, outputs = model_scaling(q, 3, 6)
    assert inputs.mean == MEAN and outputs.mean == [10.0, 20.0] * 3 and outputs.std == [2.0, 4.0] * 3  # horizon-major
    with pytest.raises(ValueError, match="trained on 3 input columns but the data has 4"):
        model_scaling(q, 4, 6)
    assert model_scaling(_int8_features(), 3, 4) == (None, None)
