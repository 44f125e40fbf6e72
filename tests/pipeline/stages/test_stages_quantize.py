"""Quantization stages through the stage registry (what recipes use)."""

import random

import pytest
import torch

from rnnslim.io.format import load_model, save_model
from rnnslim.models.sequence import SequenceModel
from rnnslim.pipeline.stage import StageContext, get_stage, parse_stage
from rnnslim.quantize.lowbit import QuantEmbedding, QuantLinear, QuantRecurrent
from rnnslim.tasks.charlm import CharLMTask


@pytest.fixture(scope="module")
def task():
    rng = random.Random(0)
    return CharLMTask(text=" ".join(rng.choice(["to", "be", "or", "not", "that", "is"]) for _ in range(5000)))


def _model(task, cell="lstm"):
    torch.manual_seed(0)
    return SequenceModel(task.model_spec(cell=cell, hidden_size=32, num_layers=2)).eval()


def _run(stage: dict, model, task, tmp_path):
    cfg = parse_stage(stage)
    _, fn = get_stage(cfg.kind)
    ctx = StageContext(task=task, work_dir=tmp_path, progress=False)
    return fn(model, cfg, ctx), ctx


@pytest.mark.parametrize("stage,fmt", [
    ({"kind": "quantize_weights", "bits": 4, "group_size": 32}, "int4 g32 sym"),
    ({"kind": "quantize_weights", "bits": 8, "group_size": None, "targets": ["rnn"]}, "int8 channel sym"),
    ({"kind": "ternary_weights", "group_size": 16}, "ternary g16"),
    ({"kind": "kmeans", "clusters": 8, "entropy_coding": True}, "kmeans8 +lzma"),
    ({"kind": "half_weights", "dtype": "fp16"}, "fp16"),
])
def test_format_stages_record_sqnr_and_sizes(stage, fmt, task, tmp_path):
    model, ctx = _run(stage, _model(task), task, tmp_path)
    rec = ctx.record
    assert rec["format"] == fmt
    paths = {r["path"] for r in rec["layers"]}
    assert {"rnn.layers.0", "rnn.layers.1"} <= paths
    assert ("embedding" in paths) == ("targets" not in stage)
    assert rec["quantized_stored_bytes"] < rec["quantized_float_bytes"]
    assert all(r["weight_sqnr_db"] > 5 for r in rec["layers"])
    assert isinstance(model.rnn.layers[1], QuantRecurrent)
    if "targets" not in stage:
        assert isinstance(model.embedding, QuantEmbedding) and isinstance(model.decoder, QuantLinear)


def test_qat_stage_is_resumable(task, tmp_path):
    stage = {"kind": "qat", "bits": 4, "group_size": 32, "activations": True, "steps": 4, "batch_size": 4,
             "seq_len": 16, "eval_max_steps": 100}
    m1, ctx1 = _run(stage, _model(task, "gru"), task, tmp_path)
    assert isinstance(m1.rnn.layers[0], QuantRecurrent) and m1.rnn.layers[0].act is not None
    assert ctx1.record["steps"] == 4 and "valid_loss_nats_after_qat" in ctx1.record
    # same work_dir: training is already complete, so the result is the same model
    m2, _ = _run(stage, _model(task, "gru"), task, tmp_path)
    x = torch.randint(0, len(task.vocab), (12, 2))
    assert torch.equal(m1(x)[0], m2(x)[0])


def test_mixed_precision_stage(task, tmp_path):
    stage = {"kind": "mixed_precision", "bits": [8, 4, 2], "group_size": 32, "budget_ratio": 0.15,
             "calib_batches": 1, "batch_size": 4, "seq_len": 16}
    model, ctx = _run(stage, _model(task), task, tmp_path)
    plan = ctx.record["plan"]
    assert plan["total_bytes"] <= plan["budget_bytes"]
    assert "budget" in ctx.record["plan_table"] and ctx.record["measured_calibration_loss"] > 0
    assert sum(t.numel() * t.element_size() for t in model.state_dict().values()) == plan["total_bytes"]


def test_stage_config_errors():
    with pytest.raises(ValueError, match="2 to 8 bits"):
        parse_stage({"kind": "quantize_weights", "bits": 1})
    with pytest.raises(ValueError):
        parse_stage({"kind": "kmeans", "clusters": 16, "colour": "red"})
    with pytest.raises(ValueError, match="exactly one"):
        parse_stage({"kind": "mixed_precision"})


def test_qat_keeps_pruned_weights_zero_on_a_quantized_grid(task, tmp_path):
    """prune (marked sparse) -> quantize_weights int4 -> qat on the frozen grid: the pruned
    codes stay at the zero point, i.e. the converted layer's pruned weights are exactly 0."""
    from rnnslim.prune.masks import mark_sparse_

    m = _model(task)
    name = "rnn.layers.0.weight_hh_l0"
    w = m.get_parameter(name)
    with torch.no_grad():  # every other column: each group of 32 keeps a real scale
        w[:, ::2] = 0
    zero = (w == 0).clone()
    mark_sparse_(m, [name])
    m, _ = _run({"kind": "quantize_weights", "bits": 4, "group_size": 32, "symmetric": False, "targets": ["rnn"]},
                m, task, tmp_path / "q")
    assert m.tensor_encodings["rnn.layers.0.qweights.weight_hh_l0.codes"] == {"encoding": "lzma", "pruned": True}
    # as the pipeline does between stages: the float weight's sparse mark is gone, the codes' mark stays
    m = load_model(save_model(m, tmp_path / "saved"))
    assert name not in m.tensor_encodings
    before = m.rnn.layers[0].to_float().weight_hh_l0.detach().clone()
    assert torch.all(before[zero] == 0)
    qat = {"kind": "qat", "bits": 4, "group_size": 32, "symmetric": False, "targets": ["rnn"], "steps": 6,
           "batch_size": 4, "seq_len": 16, "lr": 0.05, "eval_every": 1000, "eval_max_steps": 100}
    out, ctx = _run(qat, m, task, tmp_path / "qat")
    assert ctx.record["masked_tensors"] == 1
    assert isinstance(out.rnn.layers[0], QuantRecurrent)
    after = out.rnn.layers[0].to_float().weight_hh_l0.detach()
    assert torch.all(after[zero] == 0)


def test_qat_of_a_pruned_float_layer_stores_its_codes_entropy_coded(task, tmp_path):
    """prune (marked sparse) -> qat from float: the mask holds and the converted codes of the pruned
    weight are LZMA-marked though the format does not ask (dense codes would store every zero)."""
    from rnnslim.prune.masks import mark_sparse_

    m = _model(task)
    name = "rnn.layers.1.weight_ih_l0"
    with torch.no_grad():
        m.get_parameter(name)[:, 1::2] = 0
    zero = (m.get_parameter(name) == 0).clone()
    mark_sparse_(m, [name])
    qat = {"kind": "qat", "bits": 4, "group_size": 32, "targets": ["rnn"], "steps": 4, "batch_size": 4,
           "seq_len": 16, "lr": 0.05, "eval_every": 1000, "eval_max_steps": 100}
    out, ctx = _run(qat, m, task, tmp_path)
    assert ctx.record["masked_tensors"] == 1
    assert torch.all(out.rnn.layers[1].to_float().weight_ih_l0.detach()[zero] == 0)
    enc = out.tensor_encodings
    assert enc["rnn.layers.1.qweights.weight_ih_l0.codes"] == {"encoding": "lzma", "pruned": True}
    assert "rnn.layers.0.qweights.weight_ih_l0.codes" not in enc  # not pruned, format without entropy coding
