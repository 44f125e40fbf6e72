"""Low-rank models through the other stages: pipeline stages, finetune, prune, quantize, int8, MACs."""

from __future__ import annotations

import pytest
import torch
from lowrank_models import inputs, make, out

from rnnslim.io.format import load_model, save_model
from rnnslim.lowrank import LowRank, ToLSTMP, lowrank_, to_lstmp_
from rnnslim.measure.macs import macs_per_step
from rnnslim.models.sequence import SequenceModel
from rnnslim.pipeline.stage import StageContext, get_stage, parse_stage
from rnnslim.prune.targets import TargetKind, target_names
from rnnslim.quantize.api import WeightOnly, quantize_
from rnnslim.quantize.int8 import Int8Config, quantize_int8_
from rnnslim.tasks.charlm import CharLMTask


@pytest.fixture(scope="module")
def task():
    return CharLMTask(max_chars=20000)  # the stdlib corpus: same text on every machine


def _model(task, cell="lstm") -> SequenceModel:
    torch.manual_seed(0)
    spec = task.model_spec(cell=cell, hidden_size=24, num_layers=2)
    return SequenceModel(spec).eval()


def _run(kind: str, model, task, tmp_path, **fields):
    cfg = parse_stage({"kind": kind, **fields})
    ctx = StageContext(task=task, work_dir=tmp_path / kind, progress=False, seed=0, teacher=None)
    return get_stage(kind)[1](model, cfg, ctx), ctx.record


def test_stages_record_and_finetune_follows(task, tmp_path):
    m = _model(task)
    before = sum(p.numel() for p in m.parameters())
    m, rec = _run("lowrank", m, task, tmp_path, targets=["input", "recurrent"], max_params=before // 2,
                  error_batches=1)
    assert rec["params_after"] <= before // 2 and rec["params_before"] == before
    assert 0 < rec["relative_output_error"] < 1 and {s["name"] for s in rec["sites"]} >= {"recurrent.0"}
    assert all(0 < s["energy_kept"] <= 1 for s in rec["sites"])
    m, rec = _run("to_lstmp", m, task, tmp_path, proj_size=[4, 4], error_batches=1)
    assert [ly.proj_size for ly in m.spec.layers] == [4, 4] and rec["relative_output_error"] > 0
    m, rec = _run("finetune", m, task, tmp_path, max_steps=3, batch_size=4, seq_len=16, eval_max_steps=200)
    assert rec["steps"] == 3 and [ly.proj_size for ly in m.spec.layers] == [4, 4]


def test_prune_then_quantize_a_factorized_model(task, tmp_path):
    m = _model(task, "gru")
    lowrank_(m, LowRank(targets=["input", "output"], rank=6))
    assert "rnn.bottlenecks.1.weight" in target_names(m, [TargetKind.INPUT])
    assert "decoder_proj.weight" in target_names(m, [TargetKind.OUTPUT])
    m, rec = _run("prune", m, task, tmp_path, sparsity=0.5, targets=["input", "recurrent", "output"])
    assert float((m.rnn.bottlenecks[1].weight == 0).float().mean()) == pytest.approx(0.5, abs=0.02)
    assert "rnn.bottlenecks.1.weight" in m.tensor_encodings  # sparse storage of the pruned factor
    m, rec = _run("quantize_weights", m, task, tmp_path, bits=4, group_size=None)
    paths = {layer["path"] for layer in rec["layers"]}
    assert {"rnn.bottlenecks.1", "decoder_proj", "decoder", "rnn.layers.0"} <= paths  # the factors are quantized too
    save_model(m, tmp_path / "q")
    back = load_model(tmp_path / "q")
    x = inputs(m)
    torch.testing.assert_close(out(back, x), out(m, x))


def test_macs_count_the_factors():
    m = make(hidden=(12, 10))
    dense = macs_per_step(m).dense
    lowrank_(m, LowRank(targets=["input", "output"], rank=2))
    names = [p.name for p in macs_per_step(m).parts]
    assert "rnn.bottlenecks.1" in names and "decoder_proj" in names
    assert macs_per_step(m).dense < dense


@pytest.mark.parametrize("mode", ["dynamic", "integer"])
def test_int8_refuses_factors_clearly(mode):
    m = make()
    lowrank_(m, LowRank(targets=["input", "output"], rank=3))
    with pytest.raises(ValueError, match="low-rank factors \\(rnn.bottlenecks.1, decoder_proj"):
        quantize_int8_(m, Int8Config(mode=mode), calibration=[inputs(m)])


def test_int8_dynamic_runs_an_lstmp_with_a_folded_input():
    m = make(hidden=(16, 16))
    lowrank_(m, LowRank(targets=["input"], layers=(0,), rank=5))
    to_lstmp_(m, ToLSTMP(proj_size=8))
    x = inputs(m)
    y = out(m, x)
    quantize_int8_(m, Int8Config(mode="dynamic"))
    assert float((out(m, x) - y).norm() / y.norm()) < 0.05


def test_weight_only_quantization_of_an_lstmp_round_trips(tmp_path):
    m = make(hidden=(16, 16))
    to_lstmp_(m, ToLSTMP(energy=0.9))
    quantize_(m, WeightOnly(bits=8, group_size=None))
    save_model(m, tmp_path / "m")
    x = inputs(m)
    torch.testing.assert_close(out(load_model(tmp_path / "m"), x), out(m, x))


def test_structured_pruning_after_lowrank():
    from rnnslim.graph.coupling import CouplingError
    from rnnslim.prune import StructuredPruning, prune_, remove_layers_

    m = make(hidden=(16, 16))
    lowrank_(m, LowRank(targets=["input", "output"], rank=4))
    prune_(m, StructuredPruning(ratio=0.25))  # the bottleneck and decoder_proj columns follow the cut units
    assert [ly.hidden_size for ly in m.spec.layers] == [12, 12] and m.spec.layers[1].input_rank == 4
    assert m.rnn.bottlenecks[1].in_features == 12 and m.decoder_proj.in_features == 12
    with pytest.raises(CouplingError, match="low-rank bottlenecks"):
        remove_layers_(m, [1])
