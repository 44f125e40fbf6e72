"""Sensitivity analysis: a loss-vs-sparsity row per tensor/layer, weights restored, table + plot."""

import torch

from rnnslim.models.sequence import SequenceModel
from rnnslim.prune.sensitivity import sensitivity
from rnnslim.tasks.charlm import CharLMTask

TEXT = ("the quick brown fox jumps over the lazy dog. " * 30 + "pack my box with five dozen liquor jugs! " * 30)


def test_table_rows_restore_and_plot(tmp_path):
    task = CharLMTask(text=TEXT)
    m = SequenceModel(task.model_spec(cell="lstm", hidden_size=12, num_layers=2))
    before = {k: v.clone() for k, v in m.state_dict().items()}
    res = sensitivity(m, task, sparsities=[0.0, 0.5, 0.99], max_steps=200, plot_path=tmp_path / "s.png")
    assert list(res.table) == ["embedding.weight", "rnn.layers.0.weight_ih_l0", "rnn.layers.0.weight_hh_l0",
                               "rnn.layers.1.weight_ih_l0", "rnn.layers.1.weight_hh_l0", "decoder.weight"]
    assert all(torch.equal(v, m.state_dict()[k]) for k, v in before.items())
    for row in res.table.values():
        assert abs(row[0.0] - res.baseline) < 1e-9  # 0 % sparsity changes nothing
    assert res.table["decoder.weight"][0.99] != res.baseline
    assert res.sizes["decoder.weight"] == m.decoder.weight.numel()
    md = res.to_markdown()
    assert "| decoder.weight |" in md and "99%" in md
    assert (tmp_path / "s.png").stat().st_size > 1000
    assert res.to_dict()["table"]["decoder.weight"]["0.5"] == res.table["decoder.weight"][0.5]


def test_layer_grouping_and_data_criterion():
    task = CharLMTask(text=TEXT)
    m = SequenceModel(task.model_spec(cell="gru", hidden_size=8, num_layers=2))
    res = sensitivity(m, task, sparsities=[0.5], criterion="taylor", grouping="layer", max_steps=100,
                      targets=["input", "recurrent"], calibration_batches=2)
    assert list(res.table) == ["layer 0", "layer 1"]
    assert res.sizes["layer 0"] == m.rnn.layers[0].weight_ih_l0.numel() + m.rnn.layers[0].weight_hh_l0.numel()
