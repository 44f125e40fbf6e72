"""Model files from untrusted hands: every malformed input ends in a ModelFormatError (issue 10)."""

import copy
import hashlib
import json
import lzma
import os

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from rnnslim.io.errors import ModelFormatError
from rnnslim.io.format import load_model, save_model
from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, SequenceModel


def _tiny():
    spec = ModelSpec(cell="lstm", input_kind=InputKind.EMBEDDING, input_size=5, embed_size=4,
                     layers=[LayerShape(hidden_size=4), LayerShape(hidden_size=3)], output_size=5)
    torch.manual_seed(0)
    m = SequenceModel(spec).eval()
    m.task_meta = {"task": "charlm", "vocab": list("abcde")}
    return m


@pytest.fixture
def saved(tmp_path):
    save_model(_tiny(), tmp_path / "m")
    return tmp_path / "m"


def _manifest(d):
    return json.loads((d / "model.json").read_text())


def _write(d, man, resign=False):
    if resign:
        man["weights_sha256"] = hashlib.sha256((d / man.get("weights_file", "model.safetensors")).read_bytes()).hexdigest()
    (d / "model.json").write_text(json.dumps(man))


def _err(d, match):
    with pytest.raises(ModelFormatError, match=match):
        load_model(d)


def test_huge_hidden_size_refused_before_allocating(saved):
    man = _manifest(saved)
    man["spec"]["layers"][0]["hidden_size"] = 2_000_000
    _write(saved, man)
    _err(saved, r"architecture (declares|says)")


def test_million_layers_refused_quickly(saved):
    man = _manifest(saved)
    man["spec"]["layers"] = [{"hidden_size": 3}] * 1_000_000
    _write(saved, man)
    _err(saved, "spec.layers declares 1000000 layers")


@pytest.mark.parametrize("name,match", [("/dev/zero", "plain file name"), ("/etc/passwd", "plain file name"),
                                        ("../x", "plain file name"), ("..", "plain file name"), (7, "plain file name")])
def test_weights_file_must_be_beside(saved, name, match):
    man = _manifest(saved)
    man["weights_file"] = name
    _write(saved, man)
    _err(saved, match)


def test_weights_symlink_to_device_and_fifo(saved):
    man = _manifest(saved)
    os.symlink("/dev/zero", saved / "zero.safetensors")
    man["weights_file"] = "zero.safetensors"
    _write(saved, man)
    _err(saved, "not a regular file")
    os.mkfifo(saved / "fifo.safetensors")
    man["weights_file"] = "fifo.safetensors"
    _write(saved, man)
    _err(saved, "not a regular file")


def test_fifo_as_model_json(tmp_path):
    os.mkfifo(tmp_path / "m.json")
    (tmp_path / "m.safetensors").write_bytes(b"")
    _err(tmp_path / "m.json", "model JSON is not a regular file")


def test_json_list_and_float_sizes(saved):
    (saved / "model.json").write_text("[1, 2]")
    _err(saved, "top level is a JSON list")
    save_model(_tiny(), saved)
    man = _manifest(saved)
    man["spec"]["layers"][0]["hidden_size"] = 4.0
    _write(saved, man)
    _err(saved, "must be an integer")


def test_reference_float_hidden_size_and_vocab(tmp_path, shared_models):
    meta = json.loads((shared_models / "charlstm-256x2.json").read_text())
    os.symlink(shared_models / "charlstm-256x2.safetensors", tmp_path / "r.safetensors")
    for key, value, match in [("hidden_size", 256.7, "hidden_size must be a positive integer"),
                              ("num_layers", 1_000_000, "num_layers is 1000000"),
                              ("hidden_size", 2_000_000, "has shape|declares"),
                              ("vocab", meta["vocab"][:-1] + ["a"], "more than once"),
                              ("vocab", meta["vocab"][:-1] + [3], "non-string"),
                              ("weights_sha256", "0" * 64, "checksum mismatch")]:
        bad = {**meta, key: value}
        (tmp_path / "r.json").write_text(json.dumps(bad))
        _err(tmp_path / "r.json", match)


def test_nan_weights_refused_at_save_and_load(saved, tmp_path):
    m = _tiny()
    with torch.no_grad():
        m.decoder.bias[1] = float("nan")
    with pytest.raises(ModelFormatError, match="decoder.bias"):
        save_model(m, tmp_path / "nan")
    from safetensors.torch import load_file

    w = load_file(str(saved / "model.safetensors"))
    w["decoder.bias"][0] = float("inf")
    save_file(w, str(saved / "model.safetensors"))
    _write(saved, _manifest(saved), resign=True)
    _err(saved, "decoder.bias holds NaN or infinite")


def test_integer_weights_where_float_expected(saved):
    from safetensors.torch import load_file

    w = load_file(str(saved / "model.safetensors"))
    w["decoder.bias"] = w["decoder.bias"].to(torch.int32)
    save_file(w, str(saved / "model.safetensors"))
    _write(saved, _manifest(saved), resign=True)
    _err(saved, "decoder.bias is stored as int32")


def test_checksum_required(saved):
    man = _manifest(saved)
    man.pop("weights_sha256")
    _write(saved, man)
    _err(saved, "weights_sha256 is missing")


def test_sparse_declared_shape_checked_before_decoding(tmp_path):
    m = _tiny()
    m.tensor_encodings = {"rnn.layers.0.weight_hh_l0": {"encoding": "sparse_csr"}}
    save_model(m, tmp_path / "s")
    man = _manifest(tmp_path / "s")
    man["tensors"]["rnn.layers.0.weight_hh_l0"]["shape"] = [1, 600_000_000]
    _write(tmp_path / "s", man)
    _err(tmp_path / "s", r"shape is \[1, 600000000\], the architecture says \[16, 4\]")


def test_lzma_bomb_capped(tmp_path):
    m = _tiny()
    m.tensor_encodings = {"rnn.layers.0.weight_hh_l0": {"encoding": "lzma", "preset": 1}}
    save_model(m, tmp_path / "z")
    from safetensors.torch import load_file

    w = load_file(str(tmp_path / "z" / "model.safetensors"))
    bomb = lzma.compress(bytes(64 << 20), format=lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_LZMA2, "preset": 1}])
    w["rnn.layers.0.weight_hh_l0"] = torch.frombuffer(bytearray(bomb), dtype=torch.uint8)
    save_file(w, str(tmp_path / "z" / "model.safetensors"))
    man = _manifest(tmp_path / "z")
    _write(tmp_path / "z", man, resign=True)
    _err(tmp_path / "z", "or more bytes")


# --- property: any manifest mutation gives back the same model or a ModelFormatError ------------------
_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-3, 2**40), st.floats(allow_nan=False, allow_infinity=False),
                     st.text(max_size=8), st.lists(st.integers(0, 9), max_size=3), st.dictionaries(st.text(max_size=3),
                                                                                                  st.integers(), max_size=2))


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:4]):
            yield from _paths(v, prefix + (i,))


@pytest.fixture(scope="module")
def base_model(tmp_path_factory):
    d = tmp_path_factory.mktemp("prop") / "m"
    m = _tiny()
    save_model(m, d)
    return d, _manifest(d), (d / "model.safetensors").read_bytes(), {k: v.clone() for k, v in load_model(d).state_dict().items()}


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_manifest_mutations_load_identically_or_raise(base_model, data, tmp_path_factory):
    d, man, weights, ref = base_model
    man = copy.deepcopy(man)
    paths = [p for p in _paths(man) if p]
    path = data.draw(st.sampled_from(paths))
    action = data.draw(st.sampled_from(["replace", "delete"]))
    parent = man
    for k in path[:-1]:
        parent = parent[k]
    if action == "delete":
        del parent[path[-1]]
    else:
        parent[path[-1]] = data.draw(_SCALARS)
    out = tmp_path_factory.mktemp("mut")
    (out / "model.safetensors").write_bytes(weights)
    (out / "model.json").write_text(json.dumps(man))
    try:
        back = load_model(out)
    except ModelFormatError:
        return
    sd = back.state_dict()
    assert sd.keys() == ref.keys() and all(torch.equal(sd[k], ref[k]) for k in ref)
