"""The uniform factory: make_task / task_for_model / make_model across all tasks."""

from __future__ import annotations

import pytest
import torch

from rnnslim.io.format import load_model, save_model
from rnnslim.tasks import (
    get_task_class,
    make_model,
    make_task,
    task_for_model,
    task_names,
)
from rnnslim.tasks.charlm import CharLMTask
from rnnslim.tasks.classify import ClassifyTask
from rnnslim.tasks.forecast import ForecastTask
from rnnslim.tasks.wordlm import WordLMTask


@pytest.fixture
def datasets(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("hello world, hello rnnslim.\n" * 40)
    wl = tmp_path / "wl"
    wl.mkdir()
    for s in ("train", "valid", "test"):
        (wl / f"{s}.txt").write_text("a b c <unk>\nb c a\n" * 10)
    cl = tmp_path / "cl"
    cl.mkdir()
    for s, n in (("TRAIN", 10), ("TEST", 4)):
        rows = [f"q{i},{t},{(i % 2) * t},{'yes' if i % 2 else 'no'}" for i in range(n) for t in range(3)]
        (cl / f"Toy_{s}.csv").write_text("id,t,v,label\n" + "\n".join(rows) + "\n")
    fc = tmp_path / "f.csv"
    fc.write_text("x,y\n" + "\n".join(f"{i % 7},{i % 5}" for i in range(200)) + "\n")
    return {"charlm": text, "wordlm": wl, "classify": cl, "forecast": fc}


EXPECTED = {"charlm": CharLMTask, "wordlm": WordLMTask, "classify": ClassifyTask, "forecast": ForecastTask}
OPTIONS = {"charlm": {}, "wordlm": {}, "classify": {"valid_fraction": 0.2}, "forecast": {"window": 5}}


def test_names_and_classes():
    assert task_names() == ["charlm", "classify", "forecast", "wordlm"]
    for name, cls in EXPECTED.items():
        assert get_task_class(name) is cls and cls.name == name
    with pytest.raises(ValueError, match="unknown task 'nope'"):
        make_task("nope")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_round_trip_through_a_saved_model(datasets, tmp_path, name):
    """make_task -> make_model -> save/load -> task_for_model gives the same task and numbers."""
    task = make_task(name, datasets[name], **OPTIONS[name])
    assert isinstance(task, EXPECTED[name])
    model = make_model(task, hidden_size=6, num_layers=1)
    assert model.task_meta == task.meta() and model.task_meta["task"] == name
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    again = task_for_model(loaded, datasets[name])
    assert type(again) is type(task)
    for split in ("valid", "test"):
        a, b = task.evaluate(model, split), again.evaluate(loaded, split)
        assert a[task.primary_metric] == pytest.approx(b[task.primary_metric], abs=1e-6)
        assert "loss" in a and torch.isfinite(torch.tensor(a["loss"]))


def test_meta_of_another_task_is_refused(datasets):
    meta = make_task("forecast", datasets["forecast"], window=5).meta()
    with pytest.raises(ValueError, match="made for the 'forecast' task, not 'wordlm'"):
        make_task("wordlm", datasets["wordlm"], meta=meta)


def test_missing_data_and_unknown_options(datasets, tmp_path):
    for name in EXPECTED:
        with pytest.raises(FileNotFoundError, match=f"{name} data not found"):
            make_task(name, tmp_path / "absent")
    with pytest.raises(ValueError, match="window"):
        make_task("wordlm", datasets["wordlm"], window=3)  # pydantic: extra inputs are not permitted
    with pytest.raises(ValueError, match="unknown charlm options"):
        make_task("charlm", datasets["charlm"], horizon=2)


def test_task_for_model_defaults_to_charlm_and_checks_the_model(datasets):
    task = make_task("charlm", datasets["charlm"])
    model = make_model(task, hidden_size=4, num_layers=1)
    model.task_meta = {"vocab": task.vocab}  # no task name, like an older manifest
    assert isinstance(task_for_model(model, datasets["charlm"]), CharLMTask)
    wl = make_task("wordlm", datasets["wordlm"])
    wl_model = make_model(wl, hidden_size=4, num_layers=1)
    wl_model.task_meta = {"task": "wordlm"}  # no vocabulary stored: the data's own must fit the model
    assert task_for_model(wl_model, datasets["wordlm"]).vocab == wl.vocab
    wl_model.task_meta = {"task": "forecast"}
    with pytest.raises(ValueError, match="forecasting feeds float features"):
        task_for_model(wl_model, datasets["forecast"])


def test_reference_model_gets_a_charlm_task(shared_models, shakespeare):
    model = load_model(shared_models / "chargru-512x2.json")
    task = task_for_model(model, shakespeare, max_chars=200_000)
    assert isinstance(task, CharLMTask) and task.vocab == model.task_meta["vocab"]
