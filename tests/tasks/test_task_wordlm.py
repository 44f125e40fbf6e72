"""wordlm: split layouts, <eos>/<unk> handling, vocabulary, batches, training, evaluation."""

from __future__ import annotations

import math

import pytest
import torch

from rnnslim.io.format import load_model, save_model
from rnnslim.models.sequence import SequenceModel
from rnnslim.tasks import make_model, make_task, task_for_model
from rnnslim.tasks.wordlm import EOS, UNK, WordLMTask, find_split_files
from rnnslim.train import TrainConfig, train

PHRASES = ["the cat sat on the mat", "a dog ran to the park", "the bird sang", "<unk> came home"]


def corpus(n_lines: int, offset: int = 0) -> str:
    # deterministic, learnable: phrases in a fixed cycle, a blank line every 7th line
    return "\n".join("" if (i + offset) % 7 == 6 else PHRASES[(i + offset) % 4] for i in range(n_lines)) + "\n"


def write_ptb(root, train=None, valid=None, test=None, prefix="ptb.", suffix=".txt"):
    root.mkdir(parents=True, exist_ok=True)
    for split, text in (("train", train or corpus(300)), ("valid", valid or corpus(40, 1)), ("test", test or corpus(40, 2))):
        (root / f"{prefix}{split}{suffix}").write_text(text)
    return root


@pytest.mark.parametrize("prefix,suffix", [("ptb.", ".txt"), ("wiki.", ".tokens"), ("", ".txt")])
def test_all_layouts_are_found(tmp_path, prefix, suffix):
    root = write_ptb(tmp_path / "d", prefix=prefix, suffix=suffix)
    files = find_split_files(root)
    assert [f.name for f in files.values()] == [f"{prefix}{s}{suffix}" for s in ("train", "valid", "test")]


def test_tokens_eos_per_line_and_vocab_order(tmp_path):
    root = write_ptb(tmp_path / "d", train="b a b\n\nc <unk> b\n", valid="a b\n", test="c\nc\n")
    task = WordLMTask(root)
    # <eos>, <unk> first, then by descending count (b: 3), ties by first appearance (a, c)
    assert task.vocab == [EOS, UNK, "b", "a", "c"]
    words = [task.vocab[i] for i in task.split("train").tolist()]
    assert words == ["b", "a", "b", EOS, EOS, "c", UNK, "b", EOS]  # blank line -> lone <eos>
    assert [task.vocab[i] for i in task.split("test").tolist()] == ["c", EOS, "c", EOS]
    assert task.meta()["vocab"] == task.vocab and task.meta()["task"] == "wordlm"


def test_unseen_words_map_to_unk_when_train_has_unk(tmp_path):
    root = write_ptb(tmp_path / "d", train="a b <unk>\n" * 5, valid="a zebra b\n", test="a b\n")
    task = WordLMTask(root)
    assert [task.vocab[i] for i in task.split("valid").tolist()] == ["a", UNK, "b", EOS]
    assert task.unk_counts == {"train": 0, "valid": 1, "test": 0}


def test_unseen_words_without_trained_unk_are_refused_unless_asked(tmp_path):
    root = write_ptb(tmp_path / "d", train="a b c\n" * 5 + "rare\n", valid="a zebra\n", test="a b\n")
    with pytest.raises(ValueError, match="min_count=2"):
        WordLMTask(root)
    mapped = WordLMTask(root, unk="map")
    assert mapped.unk_counts["valid"] == 1
    pruned = WordLMTask(root, min_count=2)  # "rare" becomes <unk> in train, so <unk> is learnt
    assert "rare" not in pruned.vocab and pruned.unk_counts["train"] == 1
    assert WordLMTask(root, max_vocab=4).vocab == [EOS, UNK, "a", "b"]


def test_missing_or_partial_layout_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        WordLMTask(tmp_path / "nope")
    (tmp_path / "d").mkdir()
    with pytest.raises(FileNotFoundError, match="no word-LM split files"):
        WordLMTask(tmp_path / "d")
    (tmp_path / "d" / "ptb.train.txt").write_text("a\n")
    with pytest.raises(FileNotFoundError, match="missing"):
        WordLMTask(tmp_path / "d")


def test_batches_shapes_and_shift(tmp_path):
    task = WordLMTask(write_ptb(tmp_path / "d"))
    b = next(iter(task.batches("train", 3, 10)))
    assert b.inputs.shape == b.targets.shape == (10, 3) and b.inputs.dtype == torch.long
    assert torch.equal(b.inputs[1:], b.targets[:-1])


def test_training_lowers_loss_and_evaluate_keys(tmp_path):
    torch.manual_seed(0)
    task = WordLMTask(write_ptb(tmp_path / "d"))
    model = make_model(task, hidden_size=24, num_layers=1, tie_weights=True)
    assert model.decoder.weight is model.embedding.weight
    before = task.evaluate(model, "valid")
    assert set(before) >= {"loss", "loss_nats", "perplexity", "bits_per_word", "tokens"}
    assert before["tokens"] == len(task.split("valid")) - 1
    assert before["perplexity"] == pytest.approx(math.exp(before["loss_nats"]))
    train(model, task, TrainConfig(epochs=4, batch_size=4, seq_len=16, lr=2e-2), progress=False)
    after = task.evaluate(model, "valid")
    assert after["loss_nats"] < before["loss_nats"] - 0.5
    assert task.evaluate(model, "test", max_steps=20)["tokens"] == 20


def test_model_vocabulary_is_reused_and_checked(tmp_path):
    task = WordLMTask(write_ptb(tmp_path / "a"))
    model = make_model(task, hidden_size=8, num_layers=1)
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    # other data with words in another frequency order: the model's own vocabulary is used
    other = write_ptb(tmp_path / "b", train=corpus(300, 3) + "new words here\n")
    again = task_for_model(loaded, other)
    assert again.vocab == task.vocab and again.unk_counts["train"] == 3
    assert task.evaluate(loaded, "valid")["loss"] == pytest.approx(task.evaluate(model, "valid")["loss"])
    fresh = WordLMTask(other)  # its own vocabulary: one word more
    with pytest.raises(ValueError, match="task vocabulary has"):
        fresh.check_model(loaded)
    same_size = WordLMTask(write_ptb(tmp_path / "c", train=corpus(300, 3)))
    assert len(same_size.vocab) == len(task.vocab) and same_size.vocab != task.vocab
    with pytest.raises(ValueError, match="different vocabulary"):
        same_size.check_model(loaded)


def test_factory_needs_data_and_vocab_without_eos_is_refused(tmp_path):
    with pytest.raises(ValueError, match="needs a data directory"):
        make_task("wordlm")
    root = write_ptb(tmp_path / "d")
    with pytest.raises(ValueError, match="no <eos>"):
        make_task("wordlm", root, meta={"task": "wordlm", "vocab": ["a", "b"]})
    with pytest.raises(ValueError, match="min_count"):
        make_task("wordlm", root, min_count=0)
    assert isinstance(make_task("wordlm", root, max_vocab=5), WordLMTask)


def test_model_spec_matches_vocabulary(tmp_path):
    task = WordLMTask(write_ptb(tmp_path / "d"))
    spec = task.model_spec(hidden_size=16, num_layers=2, embed_size=16, tie_weights=True)
    assert spec.input_size == spec.output_size == len(task.vocab) and spec.tie_weights
    SequenceModel(spec)


def test_a_split_file_past_the_corpus_limit_is_refused_before_reading(tmp_path):
    """Bounded memory (issue 19 §7): the size is checked before any file is read."""
    root = write_ptb(tmp_path / "d")
    with open(root / "ptb.valid.txt", "wb") as f:
        f.truncate(3 << 30)  # sparse: no disk used, and never read
    with pytest.raises(ValueError, match=r"ptb.valid.txt: the text file is 3,221,225,472 bytes, more than the "
                                         r"536,870,912 .*; set RNNSLIM_MAX_CORPUS_BYTES"):
        WordLMTask(root)


@pytest.mark.parametrize("word", ["", "two words", "x" * 100_000])
def test_a_given_vocabulary_holds_words(tmp_path, word):
    root = write_ptb(tmp_path / "d")
    with pytest.raises(ValueError, match="the vocabulary entry 3 is .*non-empty words without whitespace"):
        WordLMTask(root, vocab=[EOS, UNK, "the", word, "cat"])
