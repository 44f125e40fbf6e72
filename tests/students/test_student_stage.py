"""The `student` stage: a recipe replaces the model by a student and distills into it
(char-LM through run_pipeline; forecasting and classification through the stage functions)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnslim.io.format import load_model, save_model
from rnnslim.models.sequence import SequenceModel
from rnnslim.pipeline.recipe import Recipe
from rnnslim.pipeline.runner import run_pipeline
from rnnslim.pipeline.stage import StageContext, get_stage, parse_stage
from rnnslim.tasks.charlm import CharLMTask

FT = {"kind": "finetune", "max_steps": 5, "batch_size": 8, "seq_len": 16, "eval_max_steps": 200, "lr": 0.003,
      "dropout": 0.1, "distill_alpha": 0.5, "distill_temperature": 2.0}


def test_stage_parses_and_refuses_bad_fields():
    cfg = parse_stage({"kind": "student", "cell": "GRU", "hidden_size": 8, "max_params": 1000})
    assert (cfg.cell, cfg.hidden_size, cfg.init.value) == ("gru", 8, "teacher")
    with pytest.raises(ValueError, match="exactly one of hidden_sizes"):
        parse_stage({"kind": "student", "cell": "gru"})
    with pytest.raises(ValueError):
        parse_stage({"kind": "student", "hidden_size": 8, "bogus": 1})


@pytest.mark.parametrize("student", [{"cell": "gru", "hidden_size": 12}, {"hidden_size": 16, "proj_size": 8}])
def test_recipe_student_then_distilled_finetune(tmp_path, student):
    task = CharLMTask(max_chars=20000)
    torch.manual_seed(0)
    teacher = SequenceModel(task.model_spec(cell="lstm", hidden_size=24, num_layers=2))
    teacher.task_meta = task.meta()
    recipe = Recipe.model_validate({"version": 1, "name": "student", "measure": {"eval_max_steps": 200},
                                    "stages": [{"kind": "student", "max_params": 20000, **student}, FT]})
    result = run_pipeline(teacher, recipe, task, tmp_path / "run", progress=False)
    row_s, row_ft = result.rows[1], result.rows[2]
    assert row_s.record["params_before"] == sum(p.numel() for p in teacher.parameters())
    assert row_s.record["params_after"] == sum(p.numel() for p in result.model.parameters()) < 20000
    assert "embedding.weight" in row_s.record["copied"]
    assert row_ft.record["steps"] == 5 and row_ft.record["distill"]["teacher"] == "input model"
    assert result.model.spec.cell.value == student.get("cell", "lstm")
    assert [s.hidden_size for s in result.model.spec.layers] == [student["hidden_size"]] * 2
    # save / load: the final model on disk is the student, with the task's vocabulary
    again = load_model(tmp_path / "run" / "model")
    assert again.spec == result.model.spec and again.task_meta["vocab"] == teacher.task_meta["vocab"]
    x = torch.randint(0, teacher.spec.input_size, (10, 2))
    assert torch.equal(again.eval()(x)[0], result.model.eval()(x)[0])
    saved = save_model(result.model, tmp_path / "copy")
    assert load_model(saved).history[-1]["stage"] == "finetune"


def _forecast_task(tmp_path):
    from rnnslim.tasks.forecast import ForecastTask

    t = np.arange(300)
    rows = ["a,b"] + [f"{np.sin(i / 5):.5f},{np.cos(i / 7):.5f}" for i in t]
    (tmp_path / "s.csv").write_text("\n".join(rows) + "\n")
    return ForecastTask(tmp_path / "s.csv", window=8, horizon=2)


def _classify_task(tmp_path):
    from rnnslim.tasks.classify import ClassifyTask

    rng = np.random.default_rng(0)
    for split, n in (("train", 40), ("test", 12)):
        lines = ["id,t,f0,label"]
        for i in range(n):
            label = "up" if i % 2 else "down"
            lines += [f"s{i},{k},{(k if label == 'up' else -k) + rng.normal(0, 0.1):.4f},{label}" for k in range(6)]
        (tmp_path / f"{split}.csv").write_text("\n".join(lines) + "\n")
    return ClassifyTask(tmp_path)


@pytest.mark.parametrize("make_task", [_forecast_task, _classify_task])
def test_student_stage_on_forecast_and_classify_tasks(tmp_path, make_task):
    task = make_task(tmp_path)
    torch.manual_seed(0)
    teacher = SequenceModel(task.model_spec(cell="gru", hidden_size=16, num_layers=2)).eval()
    teacher.task_meta = task.meta()
    ctx = StageContext(task=task, work_dir=tmp_path / "work", progress=False, teacher=teacher)
    _, student_fn = get_stage("student")
    student = student_fn(teacher, parse_stage({"kind": "student", "cell": "lstm", "hidden_size": 8}), ctx)
    assert student.spec.output_size == teacher.spec.output_size and student.spec.readout == teacher.spec.readout
    assert ctx.record["copied"] == ["input_proj.weight", "input_proj.bias", "decoder.bias"]
    _, ft_fn = get_stage("finetune")
    out = ft_fn(student, parse_stage({**FT, "batch_size": 16}), ctx)
    assert ctx.record["steps"] == 5 and ctx.record["distill"]["alpha"] == 0.5
    metric = task.evaluate(out, "valid")[task.primary_metric]
    assert np.isfinite(metric)
