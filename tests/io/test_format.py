"""Model files: round trip, reference models load as they are, clear errors, atomic writes."""

import json

import pytest
import torch

from rnnslim.io.errors import ModelFormatError
from rnnslim.io.format import artifact_bytes, load_model, save_model
from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, SequenceModel


def _tiny(cell="lstm", **kw):
    spec = ModelSpec(cell=cell, input_kind=InputKind.EMBEDDING, input_size=11, embed_size=6,
                     layers=[LayerShape(hidden_size=6), LayerShape(hidden_size=4)], output_size=11, **kw)
    m = SequenceModel(spec).eval()
    m.task_meta = {"task": "charlm", "vocab": list("abcdefghijk")}
    return m


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
def test_round_trip_same_outputs(tmp_path, cell):
    m = _tiny(cell)
    save_model(m, tmp_path / "m")
    back = load_model(tmp_path / "m")
    x = torch.randint(0, 11, (9, 2))
    with torch.no_grad():
        assert torch.equal(m(x)[0], back(x)[0])
    assert back.spec == m.spec and back.task_meta["vocab"] == list("abcdefghijk")
    assert artifact_bytes(tmp_path / "m") == sum(f.stat().st_size for f in (tmp_path / "m").iterdir())
    # the manifest JSON path works as well as the directory
    assert load_model(tmp_path / "m" / "model.json").spec == m.spec


def test_tied_weights_stored_once(tmp_path):
    spec = ModelSpec(cell="lstm", input_kind="embedding", input_size=20, embed_size=8, layers=[LayerShape(hidden_size=8)],
                     output_size=20, tie_weights=True)
    m = SequenceModel(spec)
    save_model(m, tmp_path / "t")
    back = load_model(tmp_path / "t")
    assert back.decoder.weight is back.embedding.weight
    assert torch.equal(back.embedding.weight, m.embedding.weight)
    manifest = json.loads((tmp_path / "t" / "model.json").read_text())
    assert "decoder.weight" not in manifest["tensors"]


def test_bf16_storage_halves_bytes(tmp_path):
    spec = ModelSpec(cell="gru", input_kind="embedding", input_size=50, embed_size=64,
                     layers=[LayerShape(hidden_size=64)], output_size=50)
    m = SequenceModel(spec)
    save_model(m, tmp_path / "f32")
    save_model(m.to(torch.bfloat16), tmp_path / "bf16")
    back = load_model(tmp_path / "bf16")
    assert back.decoder.weight.dtype == torch.bfloat16
    w32 = (tmp_path / "f32" / "model.safetensors").stat().st_size
    w16 = (tmp_path / "bf16" / "model.safetensors").stat().st_size
    assert w16 < 0.6 * w32


def _drop_checksum(model_dir):
    """Re-sign the manifest's weights checksum (now required) so loading reaches the next check."""
    import hashlib

    manifest = json.loads((model_dir / "model.json").read_text())
    manifest["weights_sha256"] = hashlib.sha256((model_dir / "model.safetensors").read_bytes()).hexdigest()
    (model_dir / "model.json").write_text(json.dumps(manifest))


def test_corrupt_weights_clear_error(tmp_path):
    save_model(_tiny(), tmp_path / "m")
    w = tmp_path / "m" / "model.safetensors"
    data = bytearray(w.read_bytes())
    data[-10] ^= 0xFF
    w.write_bytes(bytes(data))
    with pytest.raises(ModelFormatError, match="checksum mismatch"):
        load_model(tmp_path / "m")
    w.write_bytes(b"not a safetensors file")
    _drop_checksum(tmp_path / "m")
    with pytest.raises(ModelFormatError, match="corrupt or unreadable"):
        load_model(tmp_path / "m")


def test_mismatched_weights_clear_error(tmp_path):
    save_model(_tiny(), tmp_path / "a")
    other = _tiny()
    other.rnn.layers[1] = torch.nn.LSTM(6, 5)
    other.decoder = torch.nn.Linear(5, 11)
    save_model(other, tmp_path / "b")
    # weights of b under a's description
    (tmp_path / "a" / "model.safetensors").write_bytes((tmp_path / "b" / "model.safetensors").read_bytes())
    _drop_checksum(tmp_path / "a")
    with pytest.raises(ModelFormatError, match="has shape"):
        load_model(tmp_path / "a")


def test_missing_and_malformed(tmp_path):
    with pytest.raises(ModelFormatError, match="not found"):
        load_model(tmp_path / "nope")
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(ModelFormatError, match="not valid JSON"):
        load_model(tmp_path / "x.json")
    (tmp_path / "y.json").write_text("{}")
    with pytest.raises(ModelFormatError, match="weights file"):
        load_model(tmp_path / "y.json")


def test_overwrite_is_atomic_and_refuses_foreign_dirs(tmp_path):
    m = _tiny()
    save_model(m, tmp_path / "m")
    save_model(m, tmp_path / "m")  # replacing an rnnslim model directory is fine
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "precious.txt").write_text("keep me")
    with pytest.raises(ModelFormatError, match="refusing to overwrite"):
        save_model(m, tmp_path / "other")
    assert (tmp_path / "other" / "precious.txt").read_text() == "keep me"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_reference_models_load_exactly(shared_models):
    m = load_model(shared_models / "charlstm-256x2.json")
    assert m.spec.cell.value == "lstm" and [s.hidden_size for s in m.spec.layers] == [256, 256]
    assert sum(p.numel() for p in m.parameters()) == 1_086_017
    from safetensors.torch import load_file

    raw = load_file(str(shared_models / "charlstm-256x2.safetensors"))
    assert torch.equal(m.rnn.layers[1].weight_hh_l0, raw["rnn.weight_hh_l1"])
    assert torch.equal(m.decoder.bias, raw["decoder.bias"])
    ref = torch.nn.LSTM(256, 256, 2)
    ref.load_state_dict({k[4:]: v for k, v in raw.items() if k.startswith("rnn.")})
    assert torch.equal(m.rnn.to_torch().weight_ih_l1, ref.weight_ih_l1)


def test_reference_model_round_trips_through_native_format(shared_models, tmp_path):
    m = load_model(shared_models / "chargru-512x2.json")
    save_model(m, tmp_path / "gru")
    back = load_model(tmp_path / "gru")
    x = torch.randint(0, 65, (5, 1))
    with torch.no_grad():
        assert torch.equal(m(x)[0], back(x)[0])
    assert back.task_meta["vocab"] == m.task_meta["vocab"]
    assert (shared_models / "chargru-512x2.safetensors").exists()  # the input is untouched


def test_an_edited_directory_is_refused_with_the_way_to_export_it(tmp_path):
    """A save_edited directory holds the user's own class: load_model names it and says how to
    make it a model (load_edited + capture + save_model), for the directory and its edited.json."""
    from torch import nn

    from rnnslim.io.edited import save_edited

    class TinyLM(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.GRU(3, 4)

        def forward(self, x):
            return self.rnn(x)[0]

    save_edited(TinyLM(), tmp_path / "e")
    for path in (tmp_path / "e", tmp_path / "e" / "edited.json"):
        with pytest.raises(ModelFormatError) as e:
            load_model(path)
        msg = str(e.value)
        assert "\n" not in msg and msg.startswith(f"{tmp_path / 'e'} is an edited copy of your own class TinyLM")
        assert f"m = rnnslim.load_edited(TinyLM(...), '{tmp_path / 'e'}'); seq = capture(m, example_inputs)" in msg
        assert msg.endswith("rnnslim.save_model(seq, OUT); then: rnnslim export OUT")
    manifest = json.loads((tmp_path / "e" / "edited.json").read_text())
    del manifest["model_class"]  # written before the class was recorded
    (tmp_path / "e" / "edited.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFormatError, match=r"edited copy of your own model class .*load_edited\(MyModel\(\.\.\.\)"):
        load_model(tmp_path / "e")
