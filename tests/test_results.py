"""rnnslim.results: the EditResult core every verb returns and stored_bytes, the real bytes of
a model's tensors as rnnslim.io stores them."""

from __future__ import annotations

import torch

import rnnslim
from rnnslim.prune import mark_sparse_
from rnnslim.results import EditResult, stored_bytes


def _model(tie: bool = False):
    torch.manual_seed(0)
    spec = rnnslim.ModelSpec(cell="gru", input_kind="embedding", input_size=40, embed_size=16,
                             layers=[{"hidden_size": 16}], output_size=40, tie_weights=tie)
    return rnnslim.SequenceModel(spec)


def test_stored_bytes_counts_tied_tensors_once_and_follows_sparse_storage():
    plain, tied = _model(), _model(tie=True)
    assert stored_bytes(plain) == 4 * sum(t.numel() for t in plain.state_dict().values())
    assert stored_bytes(plain) - stored_bytes(tied) == 4 * 40 * 16  # the decoder reads the embedding's table
    m = _model()
    res = rnnslim.prune_(m, rnnslim.UnstructuredPruning(sparsity=0.9))
    assert res.bytes_after == res.bytes_before  # masked dense weights are not smaller on disk
    mark_sparse_(m, list(res.masks))
    assert stored_bytes(m) < res.bytes_after - 0.5 * 4 * sum(m.get_parameter(n).numel() for n in res.masks)


def test_edit_result_headline_and_compression():
    r = EditResult(family="quantize", method="WeightOnly", changed=["rnn", "decoder"], bytes_before=4000,
                   bytes_after=1000, warnings=["decoder: group size fitted"])
    assert r.compression == 4.0
    assert r.headline() == ("WeightOnly: 4,000 -> 1,000 stored bytes (4.00x); changed: rnn, decoder; 1 warning(s)")
    assert EditResult().compression is None
    assert EditResult().headline() == ("EditResult: stored bytes not measured (rnnslim's verbs measure them); "
                                       "changed: nothing")


def test_details_leave_the_core_out_for_history_records():
    m = _model()
    res = rnnslim.factorize_(m, rnnslim.LowRank(rank=4, targets=["output"]))
    assert set(res.details()) == {"params_before", "params_after", "sites", "notes"}
    assert res.core()["method"] == "LowRank" and res.core()["bytes_after"] < res.core()["bytes_before"]
    assert "family" not in m.history[-1] and m.history[-1]["params_after"] == res.params_after
