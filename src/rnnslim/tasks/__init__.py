"""Built-in tasks: data + loss + metric, and one factory for all of them.

    task = make_task("wordlm", "data/ptb")                  # a new task from data
    model = make_model(task, hidden_size=256)               # its reference model, task meta attached
    task = task_for_model(load_model("runs/x/best"), "data/ptb")  # reuse the model's vocab/scaling

Task names and their `data`:
    charlm    a UTF-8 text file, or None for the Python-stdlib corpus
    wordlm    a directory with train/valid/test files (PTB / WikiText layout)
    classify  a directory or NAME_TRAIN file (.ts via aeon, UCR .tsv, long .csv)
    forecast  a CSV file
`meta` is a model's `task_meta`: its vocabulary, classes, scaling and data options are
reused so the data is encoded exactly as during training. `options` are the task's own
settings (see each module); unknown ones are rejected.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from rnnslim.tasks.base import Batch, Task

_TASKS = {
    "charlm": "rnnslim.tasks.charlm:CharLMTask",
    "wordlm": "rnnslim.tasks.wordlm:WordLMTask",
    "classify": "rnnslim.tasks.classify:ClassifyTask",
    "forecast": "rnnslim.tasks.forecast:ForecastTask",
}
DEFAULT_TASK = "charlm"  # reference models (../shared/models) carry no task name of their own


def task_names() -> list[str]:
    return sorted(_TASKS)


def get_task_class(name: str) -> type[Task]:
    if name not in _TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of {task_names()}")
    mod, _, cls = _TASKS[name].partition(":")
    return getattr(importlib.import_module(mod), cls)


def make_task(name: str, data: str | Path | None = None, meta: dict | None = None, **options) -> Task:
    """Build task `name` on `data`, reusing a model's task meta when given."""
    meta = dict(meta or {})
    trained_on = meta.get("task")
    if trained_on is not None and trained_on != name:
        raise ValueError(f"the model was made for the {trained_on!r} task, not {name!r}")
    cls = get_task_class(name)
    from rnnslim.tasks.named_data import looks_like_name

    if data is not None and not Path(data).exists() and not (name in ("classify", "forecast") and looks_like_name(data)):
        raise FileNotFoundError(f"{name} data not found: {data}")  # (a bare name: a data set aeon ships)
    return cls.from_data(data, meta, **options)


def task_for_model(model, data: str | Path | None = None, **options) -> Task:
    """The task a model was made for (model.task_meta["task"], default charlm), on `data`,
    with the model's vocabulary / classes / scaling; raises if the model does not fit it, or if
    it was captured / imported and records no task (charlm would be a guess)."""
    from rnnslim.tasks.origin import missing_task_message

    meta = getattr(model, "task_meta", None) or {}
    why = missing_task_message(model, task_names())
    if why is not None:
        raise ValueError(why)
    task = make_task(meta.get("task", DEFAULT_TASK), data, meta, **options)
    task.check_model(model)
    return task


def make_model(task: Task, **spec_options):
    """A fresh SequenceModel of the task's reference architecture (options go to
    task.model_spec: cell, hidden_size, num_layers, dropout, embed_size, tie_weights),
    with task.meta() attached so save_model stores it."""
    from rnnslim.models.sequence import SequenceModel

    model = SequenceModel(task.model_spec(**spec_options))
    model.task_meta = task.meta()
    return model


__all__ = ["Batch", "Task", "get_task_class", "make_model", "make_task", "task_for_model", "task_names"]
