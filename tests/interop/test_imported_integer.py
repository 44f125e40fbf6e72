"""An imported model is an ordinary SequenceModel downstream: the fully integer int8 path
(quantize_int8_ integer mode with calibration) keeps its decisions, and the C export is
bit-exact against the integer kernel. (Both importers build the model in interop/assemble.py,
so the ONNX import stands for the Keras one here: no keras needed.)"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from torch import nn

pytest.importorskip("onnx", reason="onnx is an optional extra (pip install 'rnnslim[onnx]')")
pytest.importorskip("onnxruntime", reason="onnxruntime is an optional extra (pip install 'rnnslim[onnx]')")

from compilers import needs_cc

from rnnslim.export.formats import export_model  # noqa: E402
from rnnslim.interop.onnx_import import import_onnx  # noqa: E402
from rnnslim.quantize.int8 import Int8Config, quantize_int8_  # noqa: E402


class WordLM(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb, self.rnn, self.fc = nn.Embedding(17, 8), nn.LSTM(8, 12, batch_first=True), nn.Linear(12, 17)

    def forward(self, x):
        return self.fc(self.rnn(self.emb(x))[0])


def _integer(model, calibration):
    return quantize_int8_(copy.deepcopy(model), Int8Config(mode="integer"), calibration=calibration)


@pytest.fixture(scope="module")
def onnx_lm(tmp_path_factory):
    torch.manual_seed(3)
    path = tmp_path_factory.mktemp("onnx") / "lm.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(WordLM().eval(), (torch.randint(0, 17, (2, 6)),), str(path), dynamo=False,
                          input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "b", 1: "t"}})
    model = import_onnx(path)
    calibration = [torch.randint(0, 17, (10, 4)) for _ in range(4)]  # time-major ids
    return model, _integer(model, calibration)


def test_integer_int8_of_an_imported_onnx_lm_stays_close(onnx_lm):
    model, q = onnx_lm
    x = torch.randint(0, 17, (10, 3))
    with torch.no_grad():
        ref, out = model(x)[0], q(x)[0]
    assert out.shape == ref.shape
    assert float((out - ref).abs().max() / ref.abs().max()) < 0.1
    assert (out.argmax(-1) == ref.argmax(-1)).float().mean() > 0.8


@needs_cc
def test_c_export_of_an_imported_onnx_lm_is_bit_exact(onnx_lm, tmp_path):
    _, q = onnx_lm
    facts = export_model(q, "c", tmp_path / "lm", check_streams=10)
    assert facts["check"]["bit_exact"] is True and facts["check"]["streams"] == 10
