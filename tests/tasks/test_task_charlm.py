"""charlm: BENCHMARKING split, default corpus, vocabulary errors, TBPTT batches, and the
reference model's stream loss against a plain torch.nn.LSTM."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_file
from torch import nn
from torch.nn import functional as F

from rnnslim.io.format import load_model
from rnnslim.tasks import make_task, task_for_model
from rnnslim.tasks.charlm import CharLMTask, split_bounds


def test_split_bounds_follow_benchmarking_convention():
    n = 1_115_394
    b = split_bounds(n)
    assert b == {"train": (0, int(0.9 * n)), "valid": (int(0.9 * n), int(0.95 * n)), "test": (int(0.95 * n), n)}
    assert b["train"][1] == 1_003_854 and b["test"][0] == 1_059_624


def test_shakespeare_splits_are_contiguous_and_cover_the_file(shakespeare):
    text = shakespeare.read_text(encoding="utf-8")
    task = CharLMTask(shakespeare)
    assert len(task.vocab) == 65 and task.vocab == sorted(set(text))
    parts = [task.split(s) for s in ("train", "valid", "test")]
    assert sum(len(p) for p in parts) == len(text)
    n2 = int(0.95 * len(text))
    assert "".join(task.vocab[i] for i in task.split("test")[:50].tolist()) == text[n2 : n2 + 50]


def test_default_corpus_needs_no_file():
    task = make_task("charlm", max_chars=20_000)
    assert task.source == "python-stdlib"
    assert len(task.ids) == 20_000
    assert all(ord(c) < 128 for c in task.vocab)
    assert task.meta()["vocab"] == task.vocab


def test_text_outside_model_vocabulary_is_a_clear_error():
    with pytest.raises(ValueError, match="outside the model's vocabulary: 'xyz'"):
        CharLMTask(text="abc" * 40 + "xyz", vocab=list("abc"))


def test_reference_model_on_default_corpus_names_the_vocabulary_problem(shared_models):
    model = load_model(shared_models / "charlstm-256x2.json")
    with pytest.raises(ValueError, match="python-stdlib: the text has .* outside the model's vocabulary"):
        task_for_model(model)  # no data: the stdlib corpus has characters Shakespeare lacks


def test_batches_are_streams_with_targets_shifted_by_one():
    text = "".join(chr(97 + (i * 7) % 26) for i in range(2000))
    task = CharLMTask(text=text)
    B, T = 4, 16
    batches = list(task.batches("train", B, T))
    n = (len(task.split("train")) - 1) // B
    assert all(b.inputs.shape == b.targets.shape for b in batches)
    assert batches[0].inputs.shape == (T, B)
    assert sum(len(b.inputs) for b in batches) == min(n, (n - 2) // T * T + T)  # windows start below n - 1
    for b in batches:
        assert torch.equal(b.inputs[1:], b.targets[:-1])  # next-token targets
    # consecutive windows continue each stream (state can be carried)
    assert torch.equal(batches[1].inputs[0], batches[0].targets[-1])
    d = task.split("train")
    assert torch.equal(batches[0].inputs[:, 1], d[n : n + T])  # stream b starts at b * n


def test_unknown_option_is_rejected():
    with pytest.raises(ValueError, match="unknown charlm options"):
        make_task("charlm", max_chars=5000, window=3)


def test_reference_stream_loss_matches_plain_torch_lstm(shared_models, shakespeare):
    """evaluate(max_steps=3000) on the test split equals a hand-built nn.LSTM at batch 1."""
    model = load_model(shared_models / "charlstm-256x2.json")
    task = task_for_model(model, shakespeare)
    got = task.evaluate(model, "test", max_steps=3000)
    assert got["tokens"] == 3000 and math.isfinite(got["loss_nats"])
    assert got["bits_per_char"] == pytest.approx(got["loss_nats"] / math.log(2))

    w = load_file(str(shared_models / "charlstm-256x2.safetensors"))
    emb = nn.Embedding(65, 256)
    lstm = nn.LSTM(256, 256, num_layers=2)
    dec = nn.Linear(256, 65)
    emb.load_state_dict({"weight": w["embedding.weight"]})
    lstm.load_state_dict({k[4:]: v for k, v in w.items() if k.startswith("rnn.")})
    dec.load_state_dict({"weight": w["decoder.weight"], "bias": w["decoder.bias"]})
    d = task.split("test")[:3001]
    with torch.no_grad():
        h, _ = lstm(emb(d[:-1]).unsqueeze(1))  # (3000, 1, 256), zero initial state
        ref = F.cross_entropy(dec(h[:, 0]), d[1:]).item()
    assert abs(got["loss_nats"] - ref) < 1e-5
    assert 1.0 < ref < 2.5  # a trained model, not chance (ln 65 = 4.17)
