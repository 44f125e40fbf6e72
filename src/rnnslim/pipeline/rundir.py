"""The pipeline's output directory and what may be reused from an earlier run.

    out_dir/
      recipe.yaml                    the resolved recipe (defaults filled in)
      stages/00-input/model/         the input model as saved by rnnslim (row 0 of the report)
      stages/00-input/stage.json
      stages/NN-kind/model/          stage NN's output model (save_model)
      stages/NN-kind/stage.json      config, hash chain, timings, ctx.record, measurements;
                                     written last: its presence marks the stage complete
      stages/NN-kind/work/           the stage's private work dir (fine-tuning checkpoints);
                                     work/.hash names the stage hash it belongs to
      model/                         the final model
      report.md, report.html, report.json, accuracy_vs_size.png

Only these names are ever deleted; nothing else in out_dir is touched.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import yaml

from rnnslim.pipeline.recipe import Recipe
from rnnslim.report.names import PLOT_PNG, REPORT_HTML, REPORT_JSON, REPORT_MD
from rnnslim.utils.atomic import write_json_atomic, write_text_atomic

RECIPE_FILE = "recipe.yaml"
STAGES_DIR = "stages"
STAGE_JSON = "stage.json"
MODEL_DIR = "model"
WORK_DIR = "work"
WORK_HASH = ".hash"
FINAL_MODEL = "model"
INPUT_DIR = "00-input"
_STAGE_DIR_RE = re.compile(r"^\d{2,}-[A-Za-z0-9_.\-]+$")


class PipelineError(ValueError):
    """The pipeline cannot run as asked (out_dir holds another run, a stage misbehaved)."""


def stage_dir_name(index: int, kind: str) -> str:
    return f"{index:02d}-{kind}"


write_json = write_json_atomic  # the run directory's writers (utils/atomic.py)
write_text = write_text_atomic


def read_json(path: Path) -> dict | None:
    """The JSON object in `path`, or None when missing or unreadable (treated as not done)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _previous_recipe_name(path: Path) -> str | None:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return None
    return data.get("name") if isinstance(data, dict) else None


def clear_outputs(out_dir: Path) -> None:
    """Delete everything a pipeline run writes into out_dir (and nothing else)."""
    for name in (STAGES_DIR, FINAL_MODEL):
        shutil.rmtree(out_dir / name, ignore_errors=True)
    for name in (RECIPE_FILE, REPORT_MD, REPORT_HTML, REPORT_JSON, PLOT_PNG):
        (out_dir / name).unlink(missing_ok=True)


def clear_final_outputs(out_dir: Path) -> None:
    """The final model and report describe a finished run; drop them before re-running stages."""
    shutil.rmtree(out_dir / FINAL_MODEL, ignore_errors=True)
    for name in (REPORT_MD, REPORT_HTML, REPORT_JSON, PLOT_PNG):
        (out_dir / name).unlink(missing_ok=True)


def prepare_out_dir(out_dir: Path, recipe: Recipe, resume: bool) -> None:
    """Check that out_dir may hold this recipe's run, then write the resolved recipe.

    An out_dir holds the run of one recipe name: a changed recipe of the same name resumes
    (from its first changed stage); another name is refused unless resume=False, which
    deletes the old outputs first.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    old = out_dir / RECIPE_FILE
    if old.exists():
        old_name = _previous_recipe_name(old)
        if not resume:
            clear_outputs(out_dir)
        elif old_name != recipe.name:
            raise PipelineError(
                f"{out_dir} holds the run of recipe {old_name!r}, not {recipe.name!r}; choose another output "
                f"directory, or start fresh (resume=False) to delete its old outputs")
    elif any(p.name != ".DS_Store" for p in out_dir.iterdir()):
        raise PipelineError(f"{out_dir} is not empty and holds no rnnslim pipeline run (no {RECIPE_FILE}); "
                            f"choose a new or empty output directory")
    write_text(old, recipe.to_yaml())


def remove_stage_outputs(stage_dir: Path) -> None:
    """Invalidate a stage: its completion marker first, then its model (work/ is kept)."""
    (stage_dir / STAGE_JSON).unlink(missing_ok=True)
    shutil.rmtree(stage_dir / MODEL_DIR, ignore_errors=True)


def remove_stale_stage_dirs(stages_root: Path, keep: set[str]) -> None:
    """Stage dirs the recipe no longer has (other kind at that index, recipe got shorter)."""
    if not stages_root.is_dir():
        return
    for p in stages_root.iterdir():
        if p.is_dir() and _STAGE_DIR_RE.match(p.name) and p.name not in keep:
            shutil.rmtree(p)


def prepare_work_dir(work: Path, stage_hash: str) -> bool:
    """Keep `work` only if it belongs to this exact stage (same hash chain); return True if kept."""
    marker = work / WORK_HASH
    if work.exists():
        if marker.exists() and marker.read_text().strip() == stage_hash:
            return True
        shutil.rmtree(work)
    work.mkdir(parents=True)
    marker.write_text(stage_hash)
    return False
