"""The command line on a first day: built-in recipes by name, whole recipe errors, a short
compress summary, clear errors for a binary --data file, the search verdict on screen."""

import json
import re

from typer.testing import CliRunner

from rnnslim.cli import app
from rnnslim.recipes import builtin_recipes, recipe_description

runner = CliRunner()


def _words(text: str) -> list[str]:
    return text.split()


def test_recipes_prints_every_description_whole_at_any_width():
    for width in ("60", "200"):
        out = runner.invoke(app, ["recipes"], env={"COLUMNS": width})
        assert out.exit_code == 0, out.output
        assert all(len(line.rstrip()) <= int(width) for line in out.stdout.splitlines())
        printed = " ".join(_words(out.stdout))
        for name, path in builtin_recipes().items():
            # every word of the description is there, in order: wrapped, never cut
            assert " ".join(_words(recipe_description(path.read_text()))) in re.sub(r"\s+", " ", printed)
            assert name in printed
        assert "--recipe deploy-int8" in printed


def _tiny_run(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("abcdefg hijklmnop qrstuv wxyz. " * 60)
    run = tmp_path / "run"
    r = runner.invoke(app, ["train", "--out", str(run), "--data", str(text), "--hidden", "8", "--layers", "1",
                            "--max-steps", "2", "--batch-size", "8", "--seq-len", "16", "--json"])
    assert r.exit_code == 0, r.output
    return run, text


def test_compress_prints_the_table_and_the_report_path_only(tmp_path):
    run, text = _tiny_run(tmp_path)
    recipe = tmp_path / "r.yaml"
    recipe.write_text("version: 1\nname: t\nmeasure: {eval_max_steps: 64}\nstages:\n  - {kind: cast, dtype: bf16}\n")
    out = tmp_path / "c"
    r = runner.invoke(app, ["compress", str(run), "--recipe", str(recipe), "--out", str(out), "--data", str(text)])
    assert r.exit_code == 0, r.output
    report = (out / "report.md").read_text()
    assert "## Stages" in report and "## Stages" not in r.stdout and "## Machine" not in r.stdout
    table = [line for line in r.stdout.splitlines() if line.startswith("|")]
    assert len(table) == 4 and "input" in table[2] and "cast" in table[3]  # head, rule, 2 rows
    assert f"report: {out / 'report.md'}" in r.stdout


def test_compress_by_builtin_name_and_a_wrong_name(tmp_path, shared_models):
    model = str(shared_models / "charlstm-256x2.json")
    r = runner.invoke(app, ["compress", model, "--recipe", "deploy_int8", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "did you mean `deploy-int8`" in r.output and "small-lowrank" in r.output
    assert not (tmp_path / "o").exists()


def test_compress_shows_every_recipe_problem_on_its_own_line(tmp_path, shared_models):
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nname: x\nstages:\n  - kind: finetune\n    max_step: 5\n    lr: -1\n"
                   "  - kind: prune_units\n    ratio: 3\n")
    r = runner.invoke(app, ["compress", str(shared_models / "charlstm-256x2.json"), "--recipe", str(bad),
                            "--out", str(tmp_path / "o")])
    assert r.exit_code == 2
    lines = r.output.strip().splitlines()
    assert lines[0] == f"error: {bad}: invalid recipe (3 problems):"
    assert "  stage #1 (kind 'finetune'): max_step: unknown field; did you mean `max_steps`?" in lines
    assert any(line.startswith("  stage #2 (kind 'prune_units'): ratio:") for line in lines)
    r = runner.invoke(app, ["compress", str(shared_models / "charlstm-256x2.json"), "--recipe", str(bad),
                            "--out", str(tmp_path / "o"), "--json"])
    obj = json.loads(r.stdout.strip().splitlines()[-1])
    assert obj["type"] == "RecipeError" and obj["error"].count("\n") == 3


def test_eval_on_a_binary_data_file_names_the_file_and_what_data_takes(tmp_path, shared_models):
    png = tmp_path / "report.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)
    r = runner.invoke(app, ["eval", str(shared_models / "charlstm-256x2.json"), "--data", str(png)])
    assert r.exit_code == 2
    line = r.output.strip()
    assert line.startswith(f"error: --data {png}: not UTF-8 text (a binary file?")
    assert "0x89" in line and "--data takes a UTF-8 text corpus" in line and "charlm" in line
    assert "codec" not in line
