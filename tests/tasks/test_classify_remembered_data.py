"""A classifier remembers where its data came from (issue 25): eval without --data uses the
aeon data set name, or the recorded files when still there unchanged; moved or changed files
are a clear error, never a silent evaluation on other data."""

from __future__ import annotations

import json

import pytest
from classify_data import make_sequences, write_long_csv
from typer.testing import CliRunner

from rnnslim.cli import app
from rnnslim.io.format import load_model, save_model
from rnnslim.tasks import make_model, make_task, task_for_model


def test_model_trained_on_an_aeon_name_evaluates_without_data(tmp_path):
    pytest.importorskip("aeon", reason="aeon is an optional extra (pip install 'rnnslim[aeon]') not installed here")
    task = make_task("classify", "basicmotions")  # the lookup is case-insensitive
    model = make_model(task, hidden_size=8, num_layers=1)
    assert model.task_meta["data_name"] == "BasicMotions"
    save_model(model, tmp_path / "m")
    again = task_for_model(load_model(tmp_path / "m"))  # no data: the remembered name
    assert again.files == task.files and again.classes == task.classes
    res = CliRunner().invoke(app, ["eval", str(tmp_path / "m"), "--split", "test", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["sequences"] == len(task.split("test"))


def _trained_on_files(tmp_path):
    write_long_csv(tmp_path / "train.csv", make_sequences(20, 1))
    write_long_csv(tmp_path / "other_test.csv", make_sequences(10, 2), seed=1)
    task = make_task("classify", tmp_path / "train.csv", test=tmp_path / "other_test.csv")
    model = make_model(task, hidden_size=8, num_layers=1)
    assert "data_name" not in model.task_meta
    return task, model


def test_model_trained_on_files_finds_them_again_test_file_included(tmp_path):
    task, model = _trained_on_files(tmp_path)
    again = task_for_model(model)
    assert again.files == task.files  # other_test.csv, not a guessed sibling


def test_moved_or_changed_files_are_a_clear_error(tmp_path):
    task, model = _trained_on_files(tmp_path)
    write_long_csv(tmp_path / "other_test.csv", make_sequences(12, 3), seed=2)
    with pytest.raises(ValueError, match=r"other_test.csv changed since the model was trained.*--data"):
        task_for_model(model)
    (tmp_path / "train.csv").unlink()
    with pytest.raises(FileNotFoundError, match=r"train.csv is not there any more; give the data with --data"):
        task_for_model(model)
    assert task_for_model(model, data=tmp_path / "other_test.csv", test=tmp_path / "other_test.csv")  # --data wins
