"""Every command-line failure is one `error: ...` line and exit 2 (a JSON object with --json)."""

import json

import pytest
from typer.testing import CliRunner

from rnnslim.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny")
    text = d / "t.txt"
    text.write_text("abcdefg hijklmnop qrstuv wxyz. " * 200)
    r = runner.invoke(app, ["train", "--out", str(d / "run"), "--data", str(text), "--hidden", "8", "--layers", "2",
                            "--max-steps", "2", "--batch-size", "4", "--seq-len", "8", "--json"])
    assert r.exit_code == 0, r.output
    return d / "run", text


def _one_error(r, code: int = 2) -> str:
    assert r.exit_code == code, r.output
    assert "Traceback" not in r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1, r.stderr
    return lines[0]


def _compress(tiny, tmp_path, recipe_text: str, *extra):
    run, text = tiny
    rec = tmp_path / "r.yaml"
    rec.write_text(recipe_text)
    return runner.invoke(app, ["compress", str(run), "--recipe", str(rec), "--out", str(tmp_path / "o"),
                               "--data", str(text), *extra])


def test_remove_missing_layer_names_stage_and_field(tiny, tmp_path):
    line = _one_error(_compress(tiny, tmp_path, "version: 1\nname: x\nstages:\n  - kind: remove_layers\n"
                                                "    layers: [5]\n"))
    assert "remove_layers" in line and "layers" in line


def test_json_error_object(tiny, tmp_path):
    r = _compress(tiny, tmp_path, "version: 1\nname: x\nstages:\n  - kind: finetune\n    max_steps: 1\n"
                                  "    lr: .inf\n", "--json")
    _one_error(r)
    obj = json.loads(r.stdout.strip().splitlines()[-1])
    assert set(obj) == {"error", "type"} and "finite" in obj["error"]


def test_no_resume_wording(tiny, tmp_path):
    r = _compress(tiny, tmp_path, "version: 1\nname: a\nstages:\n  - kind: cast\n    dtype: bf16\n")
    assert r.exit_code == 0, r.output
    line = _one_error(_compress(tiny, tmp_path, "version: 1\nname: b\nstages:\n  - kind: cast\n    dtype: bf16\n"))
    assert "--no-resume" in line and "resume=False" not in line


def test_unexpected_error_is_one_line_and_debuggable(tiny, tmp_path, monkeypatch):
    import rnnslim.pipeline.runner as runner_mod

    def boom(*a, **k):
        raise KeyError("surprise")

    monkeypatch.setattr(runner_mod, "run_pipeline", boom)
    recipe = "version: 1\nname: x\nstages:\n  - kind: cast\n    dtype: bf16\n"
    line = _one_error(_compress(tiny, tmp_path, recipe))
    assert "surprise" in line and "RNNSLIM_DEBUG" in line
    monkeypatch.setenv("RNNSLIM_DEBUG", "1")
    r = _compress(tiny, tmp_path, recipe)
    assert isinstance(r.exception, KeyError)


def test_diverged_training_exits_2_one_line(tiny, tmp_path, monkeypatch):
    import rnnslim.train as train_mod

    _, text = tiny
    args = ["train", "--out", str(tmp_path / "r"), "--data", str(text), "--hidden", "8", "--layers", "1",
            "--max-steps", "3", "--batch-size", "4", "--seq-len", "8"]
    assert "--lr" in _one_error(runner.invoke(app, [*args, "--lr", "inf"]))

    def diverge(model, task, cfg, checkpoint_dir=None, **kw):
        raise train_mod.TrainingDiverged("loss became nan at step 1; the model was restored to its input", 1, None)

    monkeypatch.setattr(train_mod, "train", diverge)
    line = _one_error(runner.invoke(app, args))
    assert "diverged" in line and "restored to its input" in line
    assert not (tmp_path / "r" / "model").exists()


def test_divergence_names_an_existing_checkpoint_or_none(tmp_path):
    import torch

    from rnnslim.models.sequence import SequenceModel
    from rnnslim.tasks.charlm import CharLMTask
    from rnnslim.train import TrainConfig, TrainHooks, TrainingDiverged, train

    task = CharLMTask(text="abcdefg hijklmnop qrstuv wxyz. " * 100)
    model = SequenceModel(task.model_spec(hidden_size=8, num_layers=1))

    def poison(m, step):
        with torch.no_grad():
            next(m.parameters()).fill_(float("nan"))

    with pytest.raises(TrainingDiverged) as e:
        train(model, task, TrainConfig(max_steps=3, batch_size=4, seq_len=8, eval_input=False),
              checkpoint_dir=tmp_path / "ck", hooks=TrainHooks(after_step=[poison]), progress=False)
    assert e.value.restored_from is None or (e.value.restored_from / "model.json").exists()
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_degenerate_corpus_refused(tmp_path):
    for content in (b"\0" * 500, b"\n" * 500):
        f = tmp_path / "z.txt"
        f.write_bytes(content)
        line = _one_error(runner.invoke(app, ["train", "--out", str(tmp_path / "r"), "--data", str(f),
                                              "--max-steps", "1"]))
        assert "distinct" in line


def test_version_recipes_and_stage_help():
    from typer.testing import CliRunner

    from rnnslim import __version__
    from rnnslim.cli import app

    r = CliRunner()
    assert r.invoke(app, ["--version"]).stdout.strip() == f"rnnslim {__version__}"
    out = r.invoke(app, ["recipes"])
    assert out.exit_code == 0 and "deploy-int8" in out.stdout and "demo" in out.stdout
    out = r.invoke(app, ["stages", "finetune"])
    assert out.exit_code == 0 and "lr" in out.stdout and "default 0.0005" in out.stdout
    out = r.invoke(app, ["stages", "prune_unit"])
    assert out.exit_code == 2 and "did you mean prune_units" in out.output
