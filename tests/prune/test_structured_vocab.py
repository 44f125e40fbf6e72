"""Vocabulary pruning: kept tokens' logits identical, ids remapped, spec and vocab updated."""

import copy

import torch

from rnnslim.models.sequence import SequenceModel
from rnnslim.prune.structured.vocab import prune_vocab_, used_tokens
from rnnslim.tasks.charlm import CharLMTask


def test_vocab_pruning_keeps_logits_of_kept_tokens():
    full = CharLMTask(text="abc defghij" * 30 + "xyz")  # vocabulary of 14 symbols
    model = SequenceModel(full.model_spec("gru", hidden_size=8, num_layers=2)).eval()
    model.task_meta = full.meta()
    ref = copy.deepcopy(model)
    small = CharLMTask(text="abba cab " * 20, vocab=full.vocab)  # uses a, b, c and space only
    result = prune_vocab_(model, small)
    kept = result.keep
    assert [full.vocab[i] for i in kept] == [" ", "a", "b", "c"]
    assert model.embedding.num_embeddings == len(kept) == model.decoder.out_features
    assert (model.spec.input_size, model.spec.output_size) == (len(kept), len(kept))
    assert model.task_meta["vocab"] == [full.vocab[i] for i in kept]
    x = small.split("train")[:20].unsqueeze(1)  # old ids (T, 1)
    with torch.no_grad():
        y_ref = ref(x)[0][..., kept]
        y = model(result.remap(x))[0]
    assert (y - y_ref).abs().max() <= 1e-6  # same rows; only the matmul blocking differs
    assert model.history[-1]["op"] == "prune_vocab" and model.history[-1]["keep"] == kept
    # the pruned model evaluates on text of its own vocabulary
    again = CharLMTask(text="abcab" * 40, vocab=model.task_meta["vocab"])
    assert again.evaluate(model, "valid")["loss"] > 0


def test_tied_embedding_stays_tied_and_used_tokens():
    task = CharLMTask(text="hello there general kenobi " * 10)
    model = SequenceModel(task.model_spec("lstm", hidden_size=6, num_layers=1, tie_weights=True)).eval()
    prune_vocab_(model, [0, 2, 4, 6])
    assert model.decoder.weight is model.embedding.weight and model.decoder.weight.shape == (4, 6)
    assert used_tokens(torch.tensor([[3, 1], [3, 9]])) == [1, 3, 9]
