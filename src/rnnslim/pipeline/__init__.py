"""The compression spine: typed stage configs, a resumable pipeline, stage registry.

    from rnnslim.pipeline import load_recipe, run_pipeline
    result = run_pipeline(model, load_recipe("recipe.yaml"), task, "runs/x")

Names are imported lazily so that stage modules importing rnnslim.pipeline.stage stay light.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Recipe": "rnnslim.pipeline.recipe",
    "RecipeError": "rnnslim.pipeline.recipe",
    "TaskSection": "rnnslim.pipeline.recipe",
    "MeasureSection": "rnnslim.pipeline.recipe",
    "load_recipe": "rnnslim.pipeline.recipe",
    "run_pipeline": "rnnslim.pipeline.runner",
    "PipelineResult": "rnnslim.pipeline.result",
    "StageRow": "rnnslim.pipeline.result",
    "PipelineError": "rnnslim.pipeline.rundir",
    "build_task": "rnnslim.pipeline.tasks",
    "StageConfig": "rnnslim.pipeline.stage",
    "StageContext": "rnnslim.pipeline.stage",
    "register_stage": "rnnslim.pipeline.stage",
    "stage_kinds": "rnnslim.pipeline.stage",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'rnnslim.pipeline' has no attribute {name!r}")
