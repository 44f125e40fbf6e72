"""Reference points for a search's plots: recipes a user already ran with `rnnslim compress`.

    refs = [load_reference("runs/deploy-int8")]          # a compress run directory (or its report.json)
    search(model, ..., references=refs)                  # drawn beside the trials, listed in results.json

A reference is what its run measured, read from the run's report.json (the last stage row):
the primary metric on the validation split (the split the search ranks on), on the test split,
and the artifact's bytes on disk. So a hand-written recipe and the search's trials sit on one
plot, measured the same way. Nothing is re-run.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

REPORT_JSON = "report.json"


class ReferencePoint(BaseModel):
    """One recipe's result: label (its recipe name), loss (validation metric), test_loss, bytes."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
    label: str = Field(min_length=1, max_length=200)
    loss: float = Field(description="the primary metric on the validation split (what the search ranks on)")
    test_loss: float | None = Field(default=None, description="the same metric on the test split, when measured")
    bytes: int = Field(gt=0, description="artifact bytes on disk")
    metric: str = Field(default="loss", description="the metric's name in the run's report")
    source: str = Field(default="", description="where it was read from")


class ReferenceError(ValueError):
    """A reference run that cannot be read: names the path and what is wrong."""


def load_reference(path: str | Path, label: str | None = None) -> ReferencePoint:
    """The last stage of a `rnnslim compress` run (its directory or report.json) as a reference point."""
    path = Path(path)
    report = path / REPORT_JSON if path.is_dir() else path
    try:
        data = json.loads(report.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReferenceError(f"reference {path}: no {REPORT_JSON} (expected a `rnnslim compress` run "
                             "directory or its report.json)") from None
    except (OSError, ValueError) as e:
        raise ReferenceError(f"reference {report}: cannot read it as JSON ({e})") from None
    return reference_from_report(data, str(report), label)


def reference_from_report(data: dict, source: str, label: str | None = None) -> ReferencePoint:
    """A reference point from a report.json's content (e.g. one kept inside a results JSON);
    `source` names where it came from in errors and in the point."""
    report = source
    rows = data.get("rows") if isinstance(data, dict) else None
    if not rows or not isinstance(rows, list):
        raise ReferenceError(f"reference {report}: no stage rows (is it a `rnnslim compress` report.json?)")
    metric = data.get("primary_metric") or "loss"
    last = rows[-1].get("measurements") or {}
    metrics = last.get("metrics") or {}
    valid = (metrics.get("valid") or {}).get(metric)
    test = (metrics.get("test") or {}).get(metric)
    size = last.get("artifact_bytes")
    if not _finite(valid):
        raise ReferenceError(f"reference {report}: its last stage has no finite validation {metric}")
    if not isinstance(size, (int, float)) or size <= 0:
        raise ReferenceError(f"reference {report}: its last stage has no artifact size")
    recipe = data.get("recipe") if isinstance(data.get("recipe"), dict) else {}
    name = label or recipe.get("name") or Path(source).parent.name
    return ReferencePoint(label=str(name), loss=float(valid), test_loss=float(test) if _finite(test) else None,
                          bytes=int(size), metric=metric, source=source)


def check_metric(refs: list[ReferencePoint], metric: str) -> None:
    """Refuse references measured with another metric than the search ranks on (one axis, one metric)."""
    for r in refs:
        if r.metric != metric:
            raise ReferenceError(f"reference {r.label} ({r.source}) reports {r.metric!r}, the search ranks on "
                                 f"{metric!r}: they cannot share the plot's loss axis")


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
