"""Loads that would change the model silently are refused with the file and field (issue 19 §7):
tie_weights against the stored tensors, float64 weights, char-LM / word-LM vocabularies."""

import hashlib
import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from rnnslim.io.errors import ModelFormatError
from rnnslim.io.format import load_model, save_model
from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, SequenceModel
from rnnslim.tasks.vocab import MAX_WORD_CHARS


def _model(tie: bool, vocab=tuple("abcdef")) -> SequenceModel:
    spec = ModelSpec(cell="lstm", input_kind=InputKind.EMBEDDING, input_size=6, embed_size=4,
                     layers=[LayerShape(hidden_size=4)], output_size=6, tie_weights=tie)
    torch.manual_seed(0)
    m = SequenceModel(spec).eval()
    m.task_meta = {"task": "charlm", "vocab": list(vocab)}
    return m


def _edit(d, change_manifest=None, change_tensors=None):
    """Rewrite a saved model's manifest and/or weights, re-signing the weights (a valid hash)."""
    man = json.loads((d / "model.json").read_text())
    if change_tensors is not None:
        tensors = load_file(str(d / "model.safetensors"))
        change_tensors(tensors, man)
        save_file(tensors, str(d / "model.safetensors"))
        man["weights_sha256"] = hashlib.sha256((d / "model.safetensors").read_bytes()).hexdigest()
    if change_manifest is not None:
        change_manifest(man)
    (d / "model.json").write_text(json.dumps(man))


def test_tie_weights_true_on_untied_weights_is_refused(tmp_path):
    save_model(_model(tie=False), tmp_path / "m")
    _edit(tmp_path / "m", lambda man: man["spec"].update(tie_weights=True))
    with pytest.raises(ModelFormatError, match=r"model.safetensors: field spec.tie_weights is true.*decoder.weight"):
        load_model(tmp_path / "m")


def test_tie_weights_false_on_tied_weights_is_refused(tmp_path):
    save_model(_model(tie=True), tmp_path / "m")
    _edit(tmp_path / "m", lambda man: man["spec"].update(tie_weights=False))
    with pytest.raises(ModelFormatError, match=r"model.json: field spec.tie_weights is false.*no decoder.weight"):
        load_model(tmp_path / "m")


def test_tied_and_untied_models_round_trip(tmp_path):
    for tie in (True, False):
        m = _model(tie)
        back = load_model(save_model(m, tmp_path / f"m{tie}"))
        assert back.spec.tie_weights is tie
        assert (back.decoder.weight is back.embedding.weight) is tie
        assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), back.state_dict().values()))


def test_a_hand_tied_decoder_without_tie_weights_is_refused_at_save(tmp_path):
    m = _model(tie=False)
    m.decoder.weight = m.embedding.weight  # tied in Python, but the spec says untied: load could not rebuild it
    with pytest.raises(ModelFormatError, match="decoder.weight shares its storage"):
        save_model(m, tmp_path / "m")
    assert not (tmp_path / "m").exists()


def _to_float64(tensors, man):
    tensors["decoder.weight"] = tensors["decoder.weight"].double()
    man["tensors"]["decoder.weight"]["dtype"] = "float64"


def test_float64_tensor_with_a_valid_hash_is_refused_at_load(tmp_path):
    save_model(_model(tie=False), tmp_path / "m")
    _edit(tmp_path / "m", change_tensors=_to_float64)
    with pytest.raises(ModelFormatError, match="tensor decoder.weight is float64; .*float32, float16 or bfloat16"):
        load_model(tmp_path / "m")


def test_float64_model_is_refused_at_save_and_half_precision_loads(tmp_path):
    with pytest.raises(ModelFormatError, match="is float64"):
        save_model(_model(tie=False).double(), tmp_path / "d")
    assert not (tmp_path / "d").exists()
    for dtype in (torch.float16, torch.bfloat16):
        back = load_model(save_model(_model(tie=False).to(dtype), tmp_path / str(dtype)))
        assert back.decoder.weight.dtype == dtype


@pytest.mark.parametrize("entry,match", [("", "entry 5 is ''"), ("ab", "entry 5 is 'ab'"),
                                         ("x" * 100_000, r"entry 5 is .* \(100000 characters\)")])
def test_char_lm_vocabulary_entries_must_be_single_characters(tmp_path, entry, match):
    save_model(_model(tie=False), tmp_path / "m")
    _edit(tmp_path / "m", lambda man: man["task"].update(vocab=list("abcde") + [entry]))
    with pytest.raises(ModelFormatError, match=f"model.json: field task.vocab {match}"):
        load_model(tmp_path / "m")


@pytest.mark.parametrize("entry", [None, 3])
def test_non_string_vocabulary_entries_are_refused(tmp_path, entry):
    save_model(_model(tie=False), tmp_path / "m")
    _edit(tmp_path / "m", lambda man: man["task"].update(vocab=list("abcde") + [entry]))
    with pytest.raises(ModelFormatError, match=f"field task.vocab holds a non-string entry {entry}"):
        load_model(tmp_path / "m")


def test_char_lm_vocabulary_rules_apply_without_a_task_name(tmp_path):
    save_model(_model(tie=False), tmp_path / "m")  # a model without a task name is a char LM (the default task)
    _edit(tmp_path / "m", lambda man: man.update(task={"vocab": list("abcde") + ["fg"]}))
    with pytest.raises(ModelFormatError, match="task.vocab entry 5"):
        load_model(tmp_path / "m")


@pytest.mark.parametrize("entry", ["", "two words", " lead", "x" * (MAX_WORD_CHARS + 1)])
def test_word_lm_vocabulary_entries_are_words(tmp_path, entry):
    words = ["<eos>", "<unk>", "the", "cat", "sat"]
    m = _model(tie=False, vocab=words + ["mat"])
    m.task_meta["task"] = "wordlm"
    load_model(save_model(m, tmp_path / "ok"))  # multi-character words are fine for a word model
    save_model(m, tmp_path / "m")
    _edit(tmp_path / "m", lambda man: man["task"].update(vocab=words + [entry]))
    with pytest.raises(ModelFormatError, match="field task.vocab entry 5 .*non-empty words without whitespace"):
        load_model(tmp_path / "m")


def test_reference_model_vocabulary_must_be_characters(tmp_path, shared_models):
    import os

    meta = json.loads((shared_models / "charlstm-256x2.json").read_text())
    os.symlink(shared_models / "charlstm-256x2.safetensors", tmp_path / "r.safetensors")
    (tmp_path / "r.json").write_text(json.dumps({**meta, "vocab": meta["vocab"][:-1] + ["zz"]}))
    with pytest.raises(ModelFormatError, match="r.json: field vocab entry 64 is 'zz'"):
        load_model(tmp_path / "r.json")
