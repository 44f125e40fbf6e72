"""The command line: each verb end to end on small inputs, JSON output, clear errors."""

import json

import pytest
from typer.testing import CliRunner

from rnnslim.cli import app

runner = CliRunner()


def _json(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_eval_reference_model_json(shared_models, shakespeare):
    out = _json(runner.invoke(app, ["eval", str(shared_models / "charlstm-256x2.json"), "--data", str(shakespeare),
                                    "--split", "test", "--max-steps", "3000", "--json"]))
    assert out["task"] == "charlm" and out["tokens"] == 3000
    assert 1.0 < out["loss_nats"] < 2.0


def test_train_compress_measure(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("abcdefg hijklmnop qrstuv wxyz. " * 400)
    run = tmp_path / "run"
    out = _json(runner.invoke(app, ["train", "--out", str(run), "--data", str(text), "--hidden", "16", "--layers", "1",
                                    "--max-steps", "8", "--batch-size", "8", "--seq-len", "16", "--json"]))
    assert out["steps"] == 8 and (run / "model" / "model.json").exists()
    recipe = tmp_path / "r.yaml"
    recipe.write_text("version: 1\nname: t\nstages:\n  - kind: prune_units\n    ratio: 0.5\n"
                      "  - kind: int8_dynamic\n")
    summary = _json(runner.invoke(app, ["compress", str(run), "--recipe", str(recipe), "--out", str(tmp_path / "c"),
                                        "--data", str(text), "--json"]))
    assert summary["final_model"].endswith("model") and (tmp_path / "c" / "report.md").exists()
    m = _json(runner.invoke(app, ["measure", str(tmp_path / "c"), "--data", str(text), "--quick", "--threads", "1",
                                  "--no-baselines", "--json"]))
    assert m["variants"][0]["latency"]["median_ms"] > 0
    # the run directory remembers its input model: the baselines come from it without --baseline
    m = _json(runner.invoke(app, ["measure", str(tmp_path / "c"), "--data", str(text), "--quick", "--threads", "1",
                                  "--json"]))
    kinds = {v["kind"]: v.get("status") for v in m["variants"]}
    assert kinds["torch_default"] == "ok" and m["baseline"] is not None


def test_errors_are_clear(tmp_path):
    r = runner.invoke(app, ["eval", str(tmp_path / "missing.json")])
    assert r.exit_code == 2 and "model not found" in r.output
    (tmp_path / "m").mkdir()
    r = runner.invoke(app, ["train", "--out", str(tmp_path / "m"), "--task", "nope"])
    assert r.exit_code == 2 and "unknown task" in r.output


def test_bad_recipe_names_the_stage(shared_models, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nname: x\nstages:\n  - kind: prune_unitz\n")
    r = runner.invoke(app, ["compress", str(shared_models / "charlstm-256x2.json"), "--recipe", str(bad),
                            "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "prune_unitz" in r.output and "prune_units" in r.output


@pytest.mark.slow
def test_demo_quick(tmp_path):
    out = _json(runner.invoke(app, ["demo", "--quick", "--out", str(tmp_path / "demo"), "--json"]))
    assert (tmp_path / "demo" / "compress" / "report.md").exists()
    assert out["measure"]["variants"][0]["latency"]["median_ms"] > 0
    # the printed table holds every stage's result, then the baselines; not the whole report.md
    assert out["table"].startswith("| stage |") and "# rnnslim report" not in out["table"]
    assert "prune_units" in out["table"] and "int8_integer" in out["table"]
    assert "ONNX Runtime" in out["table"]
    # report.html is rewritten after the measurement: its size and latency charts hold the baselines
    page = (tmp_path / "demo" / "compress" / "report.html").read_text()
    assert out["html"] == str(tmp_path / "demo" / "compress" / "report.html")
    assert 'id="plot-latency"' in page and "torch nn (default)" in page and "final model (measured)" in page
