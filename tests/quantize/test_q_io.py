"""Model-file round trip of every quantized kind: same outputs, real bytes on disk."""

import copy

import pytest
import torch
from safetensors.torch import load_file

from rnnslim.io.format import artifact_bytes, load_model, save_model
from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, SequenceModel
from rnnslim.quantize.actquant import ActQuantConfig
from rnnslim.quantize.api import (
    QAT,
    HalfPrecision,
    KMeans,
    Ternary,
    WeightOnly,
    apply_format_,
    quantize_,
)
from rnnslim.quantize.formats import int_format
from rnnslim.quantize.storage import lzma_bytes

# (config, minimum size ratio fp32 / quantized) for a 256-unit model (~2.4 MB in fp32)
KINDS = [
    (HalfPrecision(dtype="bf16"), 1.95), (HalfPrecision(dtype="fp16"), 1.95),
    (WeightOnly(bits=8, group_size=None), 3.8), (WeightOnly(bits=4, group_size=64), 6.5),
    (WeightOnly(bits=4, group_size=64, symmetric=False, clip="mse"), 6.0), (WeightOnly(bits=3, group_size=64), 8.0),
    (WeightOnly(bits=2, group_size=64), 11.0), (Ternary(group_size=64), 11.0), (KMeans(clusters=16), 7.5),
    (KMeans(clusters=16, entropy_coding=True), 7.5),
]


def _model(cell: str, bidirectional: bool = False) -> SequenceModel:
    torch.manual_seed(0)
    spec = ModelSpec(cell=cell, input_kind=InputKind.EMBEDDING, input_size=65, embed_size=256,
                     layers=[LayerShape(hidden_size=256, bidirectional=bidirectional)], output_size=65)
    m = SequenceModel(spec).eval()
    with torch.no_grad():  # trained-looking (Gaussian) weights rather than uniform init
        for p in m.parameters():
            p.normal_(0, 0.08)
    m.task_meta = {"task": "charlm"}
    return m


@pytest.fixture(scope="module")
def saved_fp32(tmp_path_factory):
    d = tmp_path_factory.mktemp("fp32")
    return {cell: artifact_bytes(save_model(_model(cell), d / cell)) for cell in ("lstm", "gru")}


CASES = [("lstm", cfg, r) for cfg, r in KINDS] + [("gru", cfg, r) for cfg, r in KINDS[1:10:3]]


@pytest.mark.parametrize("cell,cfg,ratio", CASES, ids=[f"{c}-{k.weight_format().describe()}" for c, k, _ in CASES])
def test_round_trip_same_outputs_and_smaller(cell, cfg, ratio, tmp_path, saved_fp32):
    m = quantize_(_model(cell), cfg)
    x = torch.randint(0, 65, (40, 2))
    y, _ = m(x)
    path = save_model(m, tmp_path / "q")
    loaded = load_model(path)
    y2, _ = loaded(x)
    assert torch.equal(y, y2)
    assert type(loaded.rnn.layers[0]) is type(m.rnn.layers[0])
    assert saved_fp32[cell] / artifact_bytes(path) > ratio
    # re-saving the loaded model stores the same tensors (encodings survive the round trip)
    again = save_model(loaded, tmp_path / "q2")
    a, b = load_file(path / "model.safetensors"), load_file(again / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_entropy_coding_shrinks_the_file_not_the_values(tmp_path):
    plain, coded = quantize_(_model("lstm"), KMeans()), quantize_(_model("lstm"), KMeans(entropy_coding=True))
    assert all(k.endswith(".codes") for k in coded.tensor_encodings)
    a, b = artifact_bytes(save_model(plain, tmp_path / "a")), artifact_bytes(save_model(coded, tmp_path / "b"))
    assert b < 0.95 * a  # Gaussian weights -> uneven cluster use -> fewer than 4 bits per index
    x = torch.randint(0, 65, (30, 1))
    assert torch.equal(load_model(tmp_path / "b")(x)[0], plain(x)[0])
    codes = coded.rnn.layers[0].qweights["weight_hh_l0"].codes
    assert len(lzma_bytes(codes)) < codes.numel()


def test_mixed_formats_bidirectional_and_qat_models_round_trip(tmp_path):
    m = _model("gru", bidirectional=True)
    apply_format_(m, None, formats={"rnn.layers.0": int_format(4, 32), "decoder": int_format(8, None),
                                    "embedding": int_format(2, 64, symmetric=False)})
    x = torch.randint(0, 65, (25, 3))
    assert torch.equal(load_model(save_model(m, tmp_path / "mixed"))(x)[0], m(x)[0])
    q = quantize_(_model("lstm"), QAT(weights=WeightOnly(bits=4), activations=ActQuantConfig()))
    q.train()
    q(torch.randint(0, 65, (10, 2)))  # observe activation ranges
    q.eval()
    loaded = load_model(save_model(q, tmp_path / "qat"))
    assert torch.equal(loaded(x)[0], q(x)[0])
    quantize_(q, QAT(step="convert"))
    loaded = load_model(save_model(q, tmp_path / "converted"))
    assert torch.allclose(loaded(x)[0], q(x)[0], atol=0)


def test_history_is_saved(tmp_path):
    m = quantize_(copy.deepcopy(_model("lstm")), WeightOnly(bits=4))
    loaded = load_model(save_model(m, tmp_path / "h"))
    entry = loaded.history[-1]
    assert entry["op"] == "quantize_weights"
    assert {r["path"] for r in entry["layers"]} == {"embedding", "rnn.layers.0", "decoder"}
    assert all(r["weight_sqnr_db"] > 15 for r in entry["layers"])
