"""Task metric of a model: `task.evaluate(model, split)` for a SequenceModel, or the user's own
evaluation callable `eval_fn(model) -> {metric: value}` for any other module.

Without data, `remembered_task(model)` builds the task the model's own meta names (its corpus
or data path, else the task's default corpus); when that cannot be built or does not fit the
model (an unknown corpus: a vocabulary the default text does not fit, a moved file), the
metric is left out with the reason, and size, MACs and latency are still measured."""

from __future__ import annotations

import time
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict
from torch import nn


class Quality(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    source: str  # "task:charlm" or "eval_fn"
    split: str | None
    metrics: dict[str, float]
    primary_metric: str
    higher_is_better: bool
    max_steps: int | None = None  # a truncated split (quick mode): not a reportable test figure
    seconds: float

    @property
    def value(self) -> float:
        return self.metrics[self.primary_metric]


def remembered_task(model: nn.Module):
    """(the task `model` remembers, None) or (None, why it cannot be built), for measuring a model
    when no data was given. Only a task that builds and fits the model is returned."""
    from rnnslim.tasks import task_for_model

    try:
        return task_for_model(model), None
    except (ValueError, FileNotFoundError, ImportError) as e:
        return None, " ".join(str(e).split())  # one line, whatever the task's message looked like


def _numeric(metrics: dict) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def evaluate_quality(model: nn.Module, task=None, split: str = "test", eval_fn: Callable[[nn.Module], dict] | None = None,
                     max_steps: int | None = None, primary_metric: str | None = None,
                     higher_is_better: bool | None = None) -> Quality | None:
    """The metric of `model`; None when neither a task nor an eval_fn is given.

    eval_fn wins over task (a user's own module has no task). For eval_fn results the primary
    metric is `primary_metric`, else "loss" when present, else the first key.
    """
    t0 = time.perf_counter()
    if eval_fn is not None:
        metrics = _numeric(eval_fn(model))
        if not metrics:
            raise ValueError("eval_fn returned no numeric metrics; return a dict like {'accuracy': 0.93}")
        primary = primary_metric or ("loss" if "loss" in metrics else next(iter(metrics)))
        hib = higher_is_better if higher_is_better is not None else "loss" not in primary
        return Quality(source="eval_fn", split=None, metrics=metrics, primary_metric=primary, higher_is_better=hib,
                       max_steps=None, seconds=time.perf_counter() - t0)
    if task is None:
        return None
    if not hasattr(model, "spec"):
        raise TypeError(f"task.evaluate needs a SequenceModel; for a {type(model).__name__} pass eval_fn=")
    metrics = _numeric(task.evaluate(model, split, max_steps=max_steps))
    primary = primary_metric or task.primary_metric
    hib = task.higher_is_better if higher_is_better is None else higher_is_better
    return Quality(source=f"task:{task.name}", split=split, metrics=metrics, primary_metric=primary, higher_is_better=hib,
                   max_steps=max_steps, seconds=time.perf_counter() - t0)
