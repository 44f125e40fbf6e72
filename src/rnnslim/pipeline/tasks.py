"""Build the Task a recipe's `task:` section names, for a given model.

    task: {name: charlm, data: ../shared/data/tinyshakespeare.txt, options: {max_chars: 200000}}

The task factory is rnnslim.tasks.make_task; the model's task meta (vocabulary, classes,
scaling) is passed along so the data is encoded exactly as the model expects.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rnnslim.pipeline.recipe import RecipeError, TaskSection


def build_task(section: TaskSection, model: Any, base_dir: str | os.PathLike | None = None) -> Any:
    """The Task for `model` described by `section`; a relative `data` is relative to `base_dir`."""
    from rnnslim.tasks import make_task, task_names

    if section.name not in task_names():
        raise RecipeError(f"unknown task {section.name!r}; available: {', '.join(task_names())}")
    data = None
    if section.data is not None:
        data = Path(section.data).expanduser()
        if base_dir is not None and not data.is_absolute():
            data = Path(base_dir) / data
    meta = getattr(model, "task_meta", None) or {}
    try:
        task = make_task(section.name, data, meta, **dict(section.options))
        task.check_model(model)
    except (TypeError, ValueError, FileNotFoundError) as e:
        raise RecipeError(f"task {section.name!r}: {e}") from None
    return task
