"""The compression spine: typed stage configs, a resumable pipeline, stage registry.

    from rnnslim.pipeline import load_recipe, run_pipeline
    result = run_pipeline(model, load_recipe("recipe.yaml"), task, "runs/x")

Names are imported lazily so that stage modules importing rnnslim.pipeline.stage stay light.
"""

from __future__ import annotations

import importlib

_MODULE_EXPORTS = {  # module -> the names it exports here
    "rnnslim.pipeline.recipe": ("Recipe", "RecipeError", "TaskSection", "MeasureSection", "load_recipe"),
    "rnnslim.pipeline.runner": ("run_pipeline",),
    "rnnslim.pipeline.result": ("PipelineResult", "StageRow"),
    "rnnslim.pipeline.rundir": ("PipelineError",),
    "rnnslim.pipeline.tasks": ("build_task",),
    "rnnslim.pipeline.stage": ("StageConfig", "StageContext", "register_stage", "stage_kinds"),
}
_EXPORTS = {name: module for module, names in _MODULE_EXPORTS.items() for name in names}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'rnnslim.pipeline' has no attribute {name!r}")
