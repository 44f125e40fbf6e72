"""Built-in tasks: data + loss + metric. `get_task(name)` returns the Task class."""

from __future__ import annotations

from rnnslim.tasks.base import Batch, Task

_TASKS = {
    "charlm": "rnnslim.tasks.charlm:CharLMTask",
    "wordlm": "rnnslim.tasks.wordlm:WordLMTask",
    "classify": "rnnslim.tasks.classify:ClassifyTask",
    "forecast": "rnnslim.tasks.forecast:ForecastTask",
}


def task_names() -> list[str]:
    return sorted(_TASKS)


def get_task_class(name: str) -> type[Task]:
    import importlib

    if name not in _TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of {task_names()}")
    mod, _, cls = _TASKS[name].partition(":")
    return getattr(importlib.import_module(mod), cls)


__all__ = ["Batch", "Task", "get_task_class", "task_names"]
