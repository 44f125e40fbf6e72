"""Task metric of a model: `task.evaluate(model, split)` for a SequenceModel, or the user's own
evaluation callable `eval_fn(model) -> {metric: value}` for any other module."""

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
