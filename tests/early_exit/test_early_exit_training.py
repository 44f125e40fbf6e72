"""Training the exits with train() (joint and heads), calibration, the `early_exit` stage, the
exit metrics of ClassifyTask.evaluate / `rnnslim eval`, and restoration after a failure."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from rnnslim.early_exit import EarlyExit, add_exits_, calibrate_exits_, train_exits_
from rnnslim.io.format import save_model
from rnnslim.models.sequence import SequenceModel
from rnnslim.pipeline.stage import StageContext, get_stage
from rnnslim.tasks.classify import ClassifyTask
from rnnslim.train import TrainConfig


def _write(path, n, seed):
    """Three classes of 6-step sequences: the sign and the slope of feature 0; feature 1 is noise."""
    rng = np.random.default_rng(seed)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "t", "f0", "f1", "label"])
        for i in range(n):
            label = ("flat", "up", "down")[i % 3]
            ramp = {"flat": 0.0, "up": 1.0, "down": -1.0}[label] * np.linspace(0, 2, 6)
            for t in range(6):
                w.writerow([f"s{i}", t, ramp[t] + 0.3 * rng.standard_normal(), rng.standard_normal(), label])


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    root = tmp_path_factory.mktemp("ee_data")
    _write(root / "train.csv", 90, 0)
    _write(root / "test.csv", 30, 1)
    return ClassifyTask(root)


def _model(task, cell="lstm") -> SequenceModel:
    torch.manual_seed(0)
    m = SequenceModel(task.model_spec(cell=cell, hidden_size=8, num_layers=3))
    m.task_meta = task.meta()
    return m.eval()


TC = TrainConfig(max_steps=6, batch_size=16, lr=1e-2, eval_every=3)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_heads_mode_trains_only_the_heads(task, cell):
    m = _model(task, cell)
    add_exits_(m, EarlyExit(train_mode="heads"))
    before = {k: v.clone() for k, v in m.state_dict().items()}
    result = train_exits_(m, task, EarlyExit(train_mode="heads"), TC)
    after = m.state_dict()
    assert result.steps == 6 and result.metric == "exit_loss" and result.best_step and result.best_step > 0
    for k, v in before.items():
        assert torch.equal(after[k], v) != k.startswith("exits."), k  # heads moved, nothing else did
    assert all(p.requires_grad for p in m.parameters())  # the freeze is lifted afterwards


def test_joint_mode_trains_everything_with_prefix_losses(task):
    m = _model(task)
    add_exits_(m)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    train_exits_(m, task, EarlyExit(weights=[0.5, 0.5, 1.0], time_weight=1.0), TC)
    changed = {k for k, v in m.state_dict().items() if not torch.equal(v, before[k])}
    assert any(k.startswith("rnn.layers.0") for k in changed) and any(k.startswith("decoder") for k in changed)
    assert any(k.startswith("exits.") for k in changed)


def test_failed_training_restores_the_model(task):
    m = _model(task)
    add_exits_(m, EarlyExit(train_mode="heads"))
    before = {k: v.clone() for k, v in m.state_dict().items()}

    def boom(model, step):
        if step == 2:
            raise RuntimeError("stop")

    from rnnslim.train import TrainHooks

    with pytest.raises(RuntimeError, match="stop"):
        train_exits_(m, task, EarlyExit(train_mode="heads"), TC, hooks=TrainHooks(after_step=[boom]))
    assert all(torch.equal(v, before[k]) for k, v in m.state_dict().items())
    assert all(p.requires_grad for p in m.parameters())


def test_calibration_respects_the_bound_and_evaluate_reports_exit_metrics(task):
    m = _model(task)
    add_exits_(m)
    train_exits_(m, task, EarlyExit(), TC)
    plain = task.evaluate(m, "test")
    assert "layer_steps_fraction" not in plain  # no threshold yet: the plain metrics
    cal = calibrate_exits_(m, task, max_drop=0.0)
    assert cal.accuracy >= cal.full_accuracy and m.exits.threshold == cal.threshold
    assert cal.curve[0]["fraction"] <= cal.fraction <= 1.0
    fr = [p["fraction"] for p in cal.curve]
    acc = [p["accuracy"] for p in cal.curve]
    assert fr == sorted(fr) and acc == sorted(acc) and len(set(acc)) == len(acc)  # a Pareto front
    loose = calibrate_exits_(m, task, max_drop=0.5, store=False)
    assert loose.fraction <= cal.fraction and m.exits.threshold == cal.threshold
    assert cal.bound_met and loose.bound_met
    unreachable = calibrate_exits_(m, task, max_drop=0.0, reference_accuracy=1.5, store=False)
    assert not unreachable.bound_met and unreachable.accuracy == max(acc)  # the most accurate point instead
    calibrate_exits_(m, task, max_drop=0.0, early_time=True)
    metrics = task.evaluate(m, "test")
    assert metrics["full_accuracy"] == pytest.approx(plain["accuracy"])
    assert 1 / 3 <= metrics["layer_steps_fraction"] <= 1.0 and metrics["exit_threshold"] == cal.threshold
    assert sum(metrics[f"exited_at_layer_{k}"] for k in (1, 2, 3)) == 30
    assert 0 < metrics["stream_layer_steps_fraction"] <= 1 and metrics["early_exit_seconds"] > 0


def test_stage_adds_trains_calibrates_and_eval_reports(task, tmp_path):
    cls, run = get_stage("early_exit")
    cfg = cls(max_steps=6, batch_size=16, train_mode="heads", streaming=True)
    ctx = StageContext(task=task, work_dir=tmp_path / "work", progress=False, seed=1)
    m = run(_model(task), cfg, ctx)
    assert ctx.record["steps"] == 6 and ctx.record["exits"] == 2 and ctx.record["train_mode"] == "heads"
    assert m.exits.threshold == ctx.record["calibration"]["threshold"]
    assert m.exits.stream_threshold == ctx.record["stream_calibration"]["threshold"]
    save_model(m, tmp_path / "m")
    from rnnslim.cli import app

    out = CliRunner().invoke(app, ["eval", str(tmp_path / "m"), "--data", str(task.files["train"].parent), "--json"])
    assert out.exit_code == 0, out.output
    got = json.loads(out.output.strip().splitlines()[-1])
    assert {"layer_steps_fraction", "full_accuracy", "early_exit_seconds", "stream_accuracy"} <= set(got)
    with pytest.raises(ValueError, match="max_drop"):
        calibrate_exits_(m, task, max_drop=1.5)
