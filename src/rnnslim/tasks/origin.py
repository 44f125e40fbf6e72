"""Why a model records no task: it was captured or imported, not made by an rnnslim task.

Reference models (../shared/models) carry no task name and are charlm models, so
task_for_model defaults to charlm. A model made by rnnslim.capture or `rnnslim import` is
something else (a classifier, a forecaster...) unless it says so: guessing charlm for it gives
a vocabulary error that hides the real problem. `missing_task_message` names where the model
came from and how to give it a task.
"""

from __future__ import annotations


def _imported_file(model) -> str | None:
    """The file an imported model came from (its first history entry, `rnnslim import`)."""
    for entry in getattr(model, "history", None) or []:
        if isinstance(entry, dict) and entry.get("op") == "import":
            return str(entry.get("file", "a foreign model file"))
    return None


def missing_task_message(model, task_names: list[str]) -> str | None:
    """One line saying the captured / imported `model` records no task and what to do, or None
    when the model names its task or is neither captured nor imported."""
    meta = getattr(model, "task_meta", None) or {}
    if meta.get("task"):
        return None
    choices = ", ".join(task_names)
    info = getattr(model, "capture_info", None)
    if info is not None:
        return (f"this model was captured from {info.source_class} (rnnslim.capture) and records no task; pass "
                f"--task NAME ({choices}) with --data, or attach the task before saving, e.g. "
                "model.task_meta = ClassifyTask(csv, scaling={'mean': [0.0] * F, 'std': [1.0] * F}).meta() "
                "(docs/capture.md)")
    source = _imported_file(model)
    if source is not None:
        return (f"this model was imported from {source} and records no task; pass --task NAME ({choices}) "
                f"with --data, or import it again with `rnnslim import {source} -o DIR --task NAME`")
    return None
