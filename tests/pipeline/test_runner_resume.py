"""Resuming: completed stages are reused, changed stages and what follows re-run."""

from __future__ import annotations

from collections import Counter
from typing import Literal

import pytest
import torch

from rnnslim.pipeline.recipe import Recipe
from rnnslim.pipeline.rundir import PipelineError
from rnnslim.pipeline.runner import run_pipeline
from rnnslim.pipeline.stage import StageConfig, register_stage

RUNS: Counter = Counter()
FAIL = {"on": False}


class ShiftConfig(StageConfig):
    """Adds `shift` to the decoder bias (a cheap, visible, deterministic edit)."""

    kind: Literal["test_resume_shift"] = "test_resume_shift"
    shift: float = 0.0
    tag: str = ""


@register_stage(ShiftConfig)
def _shift(model, cfg, ctx):
    RUNS[cfg.tag] += 1
    if FAIL["on"] and cfg.tag == "fails":
        raise RuntimeError("boom")
    with torch.no_grad():
        model.decoder.bias.add_(cfg.shift)
    return model


@pytest.fixture()
def model(tiny_lm):
    return tiny_lm(num_layers=1)  # task, tiny_lm: tests/pipeline/conftest.py


@pytest.fixture(autouse=True)
def _reset():
    RUNS.clear()
    FAIL["on"] = False
    yield
    FAIL["on"] = False


def recipe(*stages: str, name: str = "resume") -> Recipe:
    body = "".join(f"  - {s}\n" for s in stages)
    return Recipe.from_yaml(f"version: 1\nname: {name}\nmeasure: {{eval_max_steps: 200}}\nstages:\n{body}")


A = "{kind: test_resume_shift, shift: 0.5, tag: a}"
B = "{kind: test_resume_shift, shift: 0.25, tag: b}"
B2 = "{kind: test_resume_shift, shift: -0.25, tag: b}"
C = "{kind: test_resume_shift, shift: 1.0, tag: c}"
FAILS = "{kind: test_resume_shift, tag: fails}"
CAST = "{kind: cast, dtype: fp16}"


def run(model, task, out, r, **kw):
    return run_pipeline(model, r, task, out, progress=False, **kw)


def test_rerun_skips_completed_stages(model, task, tmp_path):
    first = run(model, task, tmp_path, recipe(A, B, C))
    assert RUNS == {"a": 1, "b": 1, "c": 1}
    again = run(model, task, tmp_path, recipe(A, B, C))
    assert RUNS == {"a": 1, "b": 1, "c": 1}
    assert all(r.reused for r in again.rows)
    assert [r.measurements for r in again.rows] == [r.measurements for r in first.rows]
    assert torch.allclose(again.model.decoder.bias, model.decoder.bias + 1.75)


def test_changed_stage_reruns_from_there(model, task, tmp_path):
    run(model, task, tmp_path, recipe(A, B, C))
    res = run(model, task, tmp_path, recipe(A, B2, C))
    assert RUNS == {"a": 1, "b": 2, "c": 2}  # a reused; b changed; c follows a changed stage
    assert [r.reused for r in res.rows] == [True, True, False, False]
    assert torch.allclose(res.model.decoder.bias, model.decoder.bias + 1.25)
    assert (tmp_path / "report.md").exists()


def test_shorter_or_reordered_recipe_drops_stale_stage_dirs(model, task, tmp_path):
    run(model, task, tmp_path, recipe(A, B, C))
    res = run(model, task, tmp_path, recipe(A, CAST))
    assert sorted(p.name for p in (tmp_path / "stages").iterdir()) == ["00-input", "01-test_resume_shift", "02-cast"]
    assert RUNS["a"] == 1 and res.model.decoder.weight.dtype == torch.float16


def test_changed_input_model_reruns_everything(model, task, tmp_path):
    run(model, task, tmp_path, recipe(A, B))
    with torch.no_grad():
        model.decoder.bias.add_(1.0)
    res = run(model, task, tmp_path, recipe(A, B))
    assert RUNS == {"a": 2, "b": 2} and not any(r.reused for r in res.rows)


def test_interrupted_stage_keeps_earlier_stages_and_rerun_completes(model, task, tmp_path):
    FAIL["on"] = True
    with pytest.raises(RuntimeError, match="boom"):
        run(model, task, tmp_path, recipe(A, FAILS, B))
    stages = tmp_path / "stages"
    assert (stages / "01-test_resume_shift" / "stage.json").exists()
    assert not (stages / "02-test_resume_shift" / "stage.json").exists()
    assert not (stages / "03-test_resume_shift").exists() and not (tmp_path / "report.md").exists()
    FAIL["on"] = False
    res = run(model, task, tmp_path, recipe(A, FAILS, B))
    assert RUNS == {"a": 1, "fails": 2, "b": 1}
    assert [r.reused for r in res.rows] == [True, True, False, False]
    assert (tmp_path / "report.json").exists()


def test_keyboard_interrupt_in_finetune_resumes_its_checkpoint(model, task, tmp_path, monkeypatch):
    from rnnslim.pipeline import finetuning

    ft = "{kind: finetune, max_steps: 4, batch_size: 8, seq_len: 16, eval_max_steps: 100, checkpoint_every: 2}"

    def stop(m, step):
        if step == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(finetuning, "mask_hooks", lambda m, masks=None: ([stop], 0))
    with pytest.raises(KeyboardInterrupt):
        run(model, task, tmp_path, recipe(A, ft))
    monkeypatch.undo()
    res = run(model, task, tmp_path, recipe(A, ft))
    assert res.rows[2].record["resumed_from_checkpoint"] is True and res.rows[2].record["steps"] == 4
    assert RUNS == {"a": 1}


def test_other_recipe_is_refused_unless_fresh(model, task, tmp_path):
    run(model, task, tmp_path, recipe(A))
    with pytest.raises(PipelineError, match="holds the run of recipe 'resume', not 'other'"):
        run(model, task, tmp_path, recipe(B, name="other"))
    res = run(model, task, tmp_path, recipe(B, name="other"), resume=False)
    assert RUNS == {"a": 1, "b": 1} and not any(r.reused for r in res.rows)
    assert "name: other" in (tmp_path / "recipe.yaml").read_text()


def test_fresh_start_of_the_same_recipe_reruns(model, task, tmp_path):
    run(model, task, tmp_path, recipe(A))
    run(model, task, tmp_path, recipe(A), resume=False)
    assert RUNS == {"a": 2}


def test_foreign_directory_is_refused(model, task, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    for resume in (True, False):
        with pytest.raises(PipelineError, match="not empty and holds no rnnslim pipeline run"):
            run(model, task, tmp_path, recipe(A), resume=resume)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_measure_change_remeasures_without_rerunning(model, task, tmp_path):
    run(model, task, tmp_path, recipe(A))
    r = Recipe.from_yaml(f"version: 1\nname: resume\nmeasure: {{eval_max_steps: 100}}\nstages:\n  - {A}\n")
    res = run(model, task, tmp_path, r)
    assert RUNS == {"a": 1} and all(row.reused for row in res.rows)
    assert res.rows[1].metric("valid", "tokens") == 100
