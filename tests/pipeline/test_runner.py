"""run_pipeline end to end: finetune + cast on a tiny model, outputs and input safety."""

from __future__ import annotations

import json
from typing import Literal

import pytest
import torch

from rnnslim.io.format import artifact_bytes, load_model, save_model
from rnnslim.pipeline.recipe import Recipe
from rnnslim.pipeline.runner import run_pipeline
from rnnslim.pipeline.stage import StageConfig, StageContext, register_stage

SEEN: list[StageContext] = []


class PeekConfig(StageConfig):
    kind: Literal["test_runner_peek"] = "test_runner_peek"


@register_stage(PeekConfig)
def _peek(model, cfg, ctx):
    SEEN.append(ctx)
    ctx.record["tensor"] = torch.tensor(1.5)  # records are made JSON-safe by the runner
    return model


class PoisonConfig(StageConfig):
    kind: Literal["test_runner_poison"] = "test_runner_poison"


@register_stage(PoisonConfig)
def _poison(model, cfg, ctx):
    with torch.no_grad():
        model.decoder.bias[0] = float("nan")
    return model


RECIPE = """\
version: 1
name: tiny
seed: 1
measure: {eval_max_steps: 400}
stages:
  - {kind: finetune, max_steps: 4, batch_size: 8, seq_len: 16, eval_max_steps: 200}
  - {kind: test_runner_peek}
  - {kind: cast, dtype: bf16}
"""


@pytest.fixture()
def model_file(tiny_lm, tmp_path):  # task, tiny_lm: tests/pipeline/conftest.py
    return save_model(tiny_lm(num_layers=1), tmp_path / "input-model")


def _files(d):
    return {p.name: p.read_bytes() for p in d.iterdir()}


def test_pipeline_writes_every_output_and_leaves_the_input_alone(task, model_file, tmp_path):
    model = load_model(model_file)
    before_state = {k: v.clone() for k, v in model.state_dict().items()}
    before_files = _files(model_file)
    before_history = list(model.history)
    out = tmp_path / "run"
    SEEN.clear()
    res = run_pipeline(model, Recipe.from_yaml(RECIPE), task, out, progress=False)

    # the input model object and its files are untouched
    for k, v in model.state_dict().items():
        assert v.dtype == before_state[k].dtype and torch.equal(v, before_state[k]), k
    assert _files(model_file) == before_files and model.history == before_history

    # out_dir layout
    assert Recipe.from_yaml((out / "recipe.yaml").read_text()) == Recipe.from_yaml(RECIPE)
    names = ["00-input", "01-finetune", "02-test_runner_peek", "03-cast"]
    assert sorted(p.name for p in (out / "stages").iterdir()) == names
    for n in names:
        info = json.loads((out / "stages" / n / "stage.json").read_text())
        assert info["measurements"]["artifact_bytes"] == artifact_bytes(out / "stages" / n / "model")
        assert set(info["measurements"]["metrics"]) == {"valid", "test"}
    ft = json.loads((out / "stages/01-finetune/stage.json").read_text())
    assert ft["config"]["max_steps"] == 4 and ft["record"]["steps"] == 4 and ft["timings"]["run_s"] > 0
    assert (out / "stages/01-finetune/work/train/last/model.json").exists()  # resumable checkpoints
    peek = json.loads((out / "stages/02-test_runner_peek/stage.json").read_text())
    assert peek["record"] == {"tensor": 1.5}
    for f in ("report.md", "report.json", "accuracy_vs_size.png", "model/model.json"):
        assert (out / f).exists(), f

    # rows: input + 3 stages, measured from the saved artifacts
    assert [r.kind for r in res.rows] == ["input", "finetune", "test_runner_peek", "cast"]
    assert not any(r.reused for r in res.rows)
    r0, r1, _, r3 = res.rows
    assert r0.measurements["params"] == sum(p.numel() for p in model.parameters())
    assert r0.metric("test", "loss_nats") == pytest.approx(task.evaluate(model, "test", max_steps=400)["loss_nats"])
    assert r1.metric("valid", "loss_nats") < r0.metric("valid", "loss_nats")  # fine-tuning helped
    assert r3.measurements["artifact_bytes"] < 0.75 * r1.measurements["artifact_bytes"]
    assert r3.metric("test", "loss_nats") == pytest.approx(r1.metric("test", "loss_nats"), abs=0.02)
    assert r0.measurements["latency"] is None

    # the final model: bf16, with one history record per stage
    final = load_model(out / "model")
    assert final.decoder.weight.dtype == torch.bfloat16
    assert [h.get("stage") for h in final.history[-3:]] == ["finetune", "test_runner_peek", "cast"]
    assert final.history[-1]["config"] == {"kind": "cast", "dtype": "bf16"} and final.history[-1]["recipe"] == "tiny"
    for k, v in final.state_dict().items():
        assert torch.equal(v, res.model.state_dict()[k])

    # the stage saw a teacher equal to the input model, in eval mode, and its own work dir
    (ctx,) = SEEN
    assert not ctx.teacher.training and ctx.teacher is not model
    for k, v in ctx.teacher.state_dict().items():
        assert torch.equal(v, before_state[k])
    assert ctx.work_dir == out / "stages/02-test_runner_peek/work" and ctx.seed == 1 + 2 and not ctx.progress

    report = json.loads((out / "report.json").read_text())
    assert [r["label"] for r in report["rows"]] == ["input", "01-finetune", "02-test_runner_peek", "03-cast"]
    md = (out / "report.md").read_text()
    for label in ("| input |", "| 01-finetune |", "| 03-cast |"):
        assert label in md


def test_recipe_task_section_builds_the_task(task, model_file, tmp_path):
    data = tmp_path / "text.txt"
    data.write_text("".join(c for c in "".join(task.vocab) * 200))
    recipe_file = tmp_path / "r.yaml"
    recipe_file.write_text("version: 1\nname: t\ntask: {name: charlm, data: text.txt, options: {max_chars: 5000}}\n"
                           "stages:\n  - {kind: cast, dtype: fp16}\n")
    res = run_pipeline(load_model(model_file), recipe_file, None, tmp_path / "run", progress=False)
    assert res.task["name"] == "charlm" and res.task["meta"]["corpus"] == str(data)
    assert res.rows[-1].metric("valid", "tokens") == 249  # 5% of 5000 characters, minus one


def test_a_stage_with_non_finite_weights_is_never_saved(task, model_file, tmp_path):
    from rnnslim.pipeline.rundir import PipelineError

    recipe = Recipe.from_yaml("version: 1\nname: nan\nmeasure: {eval_max_steps: 100}\n"
                              "stages:\n  - {kind: test_runner_poison}\n")
    with pytest.raises(PipelineError, match="non-finite values in decoder.bias; nothing was saved"):
        run_pipeline(load_model(model_file), recipe, task, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "stages" / "01-test_runner_poison" / "model").exists()
    assert not (tmp_path / "run" / "model").exists()  # no final model either
