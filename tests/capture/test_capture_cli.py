"""A captured model saved with save_model goes through the command line like any model: eval
(with task metadata attached), compress (the record survives), measure and export to C."""

from __future__ import annotations

import copy
import json

import torch
from classify_data import make_sequences, write_long_csv
from torch import nn
from typer.testing import CliRunner

from rnnslim.capture import capture, user_view
from rnnslim.cli import app
from rnnslim.io.format import load_model, save_model
from rnnslim.quantize.int8 import Int8Config, Int8Mode, quantize_int8_
from rnnslim.tasks.classify import ClassifyTask

runner = CliRunner()


class _Classifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(2, 8, batch_first=True)
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        return self.fc(self.rnn(x)[0][:, -1])


def _json(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_cli_verbs_on_a_captured_classifier(tmp_path):
    train = write_long_csv(tmp_path / "train.csv", make_sequences(30, 1))
    write_long_csv(tmp_path / "test.csv", make_sequences(12, 2), seed=1)
    torch.manual_seed(0)
    model = capture(_Classifier().eval(), (torch.randn(3, 6, 2),))
    # the user's module reads raw features: the task's scaling is the identity
    task = ClassifyTask(train, test=tmp_path / "test.csv", scaling={"mean": [0.0, 0.0], "std": [1.0, 1.0]})
    model.task_meta = task.meta()
    save_model(model, tmp_path / "m")
    ev = _json(runner.invoke(app, ["eval", str(tmp_path / "m"), "--data", str(train), "--json"]))
    assert abs(ev["loss"] - task.evaluate(model, "test")["loss"]) < 1e-6

    recipe = tmp_path / "r.yaml"
    recipe.write_text("version: 1\nname: q\nstages:\n  - kind: quantize_weights\n")
    _json(runner.invoke(app, ["compress", str(tmp_path / "m"), "--recipe", str(recipe), "--data", str(train),
                              "--out", str(tmp_path / "run"), "--json"]))
    assert load_model(tmp_path / "run").capture_info == model.capture_info

    m = _json(runner.invoke(app, ["measure", str(tmp_path / "m"), "--quick", "--threads", "1", "--no-baselines",
                                  "--json"]))
    assert m["variants"][0]["latency"]["median_ms"] > 0

    view = user_view(model)
    cal = [view.to_time_major(torch.randn(4, 7, 2)) for _ in range(3)]
    q = quantize_int8_(copy.deepcopy(model), Int8Config(mode=Int8Mode.INTEGER), calibration=cal)
    save_model(q, tmp_path / "q")
    out = runner.invoke(app, ["export", str(tmp_path / "q"), "--format", "c", "--out", str(tmp_path / "c")])
    assert out.exit_code == 0, out.output
    assert (tmp_path / "c" / "model.json").exists()
