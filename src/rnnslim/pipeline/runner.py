"""Run a recipe's stages on a copy of a model, resumably, and report the result.

    result = run_pipeline(load_model("charlstm-256x2.json"), load_recipe("r.yaml"), task, "runs/r")

- The input model (object and file) is never modified: stages run on a deep copy, and
  the teacher given to stages (StageContext.teacher) is another copy in eval mode.
- After each stage its output is saved (stages/NN-kind/model), loaded back and measured
  from what was saved, so every row describes the artifact on disk and a resumed run
  continues from exactly the same model as an uninterrupted one. A stage's output must
  therefore be fully described by its saved model (no Python-only attributes).
- Resume: a stage whose stage.json holds the same hash chain is skipped; the first stage
  that differs (or never finished) and everything after it run again. Interrupting
  (Ctrl-C, an exception) keeps completed stages and the interrupted stage's work dir.
- Seeds: before stage i torch is seeded with recipe.seed + i, and ctx.seed = recipe.seed + i.
- Several processes (torchrun): every rank runs every stage on the same model, so the
  stages that train do so with DDP (rnnslim.train.ddp); rank 0 alone writes the run
  directory, measures and reports, the others wait for it and return None.
"""

from __future__ import annotations

import copy
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from rnnslim.io.format import load_model, save_model
from rnnslim.pipeline import rundir as rd
from rnnslim.pipeline.fingerprint import config_hash, dict_hash, input_hash, jsonable
from rnnslim.pipeline.measurements import EVAL_SPLITS, measure_model
from rnnslim.pipeline.recipe import Recipe, RecipeError, load_recipe
from rnnslim.pipeline.result import PipelineResult, StageRow
from rnnslim.pipeline.stage import StageContext, get_stage
from rnnslim.utils.device import resolve_device
from rnnslim.utils.distributed import Dist, join


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _log(progress: bool, msg: str) -> None:
    if progress:
        print(f"[rnnslim] {msg}", file=sys.stderr, flush=True)


def _task_summary(task: Any) -> dict:
    meta = jsonable(task.meta()) if hasattr(task, "meta") else {}
    meta = {k: (f"<{len(v)} entries>" if isinstance(v, list) and len(v) > 20 else v) for k, v in meta.items()}
    return {"name": getattr(task, "name", type(task).__name__), "primary_metric": task.primary_metric,
            "higher_is_better": bool(task.higher_is_better), "meta": meta}


def _stage_json(row: StageRow, prev_hash: str | None, measure_key: str) -> dict:
    return jsonable({"index": row.index, "kind": row.kind, "config": row.config, "hash": row.hash,
                     "prev_hash": prev_hash, "record": row.record, "timings": row.timings,
                     "measure_key": measure_key, "measurements": row.measurements, "finished_at": _now()})


def _measure(model, task, model_dir: Path, recipe: Recipe, timings: dict) -> dict:
    m = measure_model(model, task, model_dir, recipe.measure)
    timings.update(m.pop("timings"))
    return m


def _save_and_reload(model, model_dir: Path, device: str, timings: dict):
    t0 = time.perf_counter()
    save_model(model, model_dir)
    t1 = time.perf_counter()
    loaded = load_model(model_dir, map_location=device)
    timings.update(save_s=t1 - t0, load_s=time.perf_counter() - t1)
    return loaded


def _reuse_row(info: dict, sdir: Path, rel: str, task, recipe: Recipe, measure_key: str, device: str) -> StageRow:
    row = StageRow(index=info["index"], kind=info["kind"], dir=rel, config=info["config"], hash=info["hash"],
                   reused=True, measurements=info.get("measurements") or {}, timings=info.get("timings") or {},
                   record=info.get("record") or {})
    if info.get("measure_key") != measure_key or not row.measurements:  # measure section changed: re-measure
        model = load_model(sdir / rd.MODEL_DIR, map_location=device)
        row.measurements = _measure(model, task, sdir / rd.MODEL_DIR, recipe, row.timings)
        rd.write_json(sdir / rd.STAGE_JSON, _stage_json(row, info.get("prev_hash"), measure_key))
    return row


def _is_complete(sdir: Path, h: str) -> dict | None:
    info = rd.read_json(sdir / rd.STAGE_JSON)
    if info and info.get("hash") == h and (sdir / rd.MODEL_DIR / "model.json").exists():
        return info
    return None


def _input_row(current, model, task, recipe: Recipe, in_dir: Path, in_hash: str, measure_key: str, device: str,
               progress: bool) -> tuple[StageRow, bool]:
    """Row 0: the input model saved into stages/00-input and measured; (row, reused)."""
    rel = f"{rd.STAGES_DIR}/{rd.INPUT_DIR}"
    info = _is_complete(in_dir, in_hash)
    if info:
        return _reuse_row(info, in_dir, rel, task, recipe, measure_key, device), True
    _log(progress, f"measuring the input model -> {in_dir}")
    rd.remove_stage_outputs(in_dir)
    row = StageRow(0, "input", rel, {"source": getattr(model, "source_path", None)}, in_hash, False, {})
    saved = _save_and_reload(current, in_dir / rd.MODEL_DIR, device, row.timings)
    row.measurements = _measure(saved, task, in_dir / rd.MODEL_DIR, recipe, row.timings)
    rd.write_json(in_dir / rd.STAGE_JSON, _stage_json(row, None, measure_key))
    return row, False


def _run_stage(current, cfg, index: int, name: str, h: str, prev_hash: str, sdir: Path, task, teacher,
               recipe: Recipe, measure_key: str, device: str, progress: bool,
               dist: Dist | None = None) -> tuple[StageRow | None, Any]:
    """Run one stage on `current` (a private model), save, reload, measure; (row, saved model)
    (under torchrun every rank runs the stage, rank 0 saves and measures; row None elsewhere)."""
    _check_stage_fields(cfg, index, current)  # after a stage that changed the structure: the model it gets
    dist = dist or Dist()
    kept = dist.leader_call(lambda: rd.prepare_work_dir(sdir / rd.WORK_DIR, h))
    _log(progress, f"[{index}/{len(recipe.stages)}] {name}: running" + (" (resuming its work dir)" if kept else ""))
    ctx = StageContext(task=task, work_dir=sdir / rd.WORK_DIR, device=device, seed=recipe.seed + index,
                       progress=progress, teacher=teacher)
    _, fn = get_stage(cfg.kind)
    config = cfg.model_dump(mode="json")
    t0 = time.perf_counter()
    with torch.random.fork_rng(devices=[]):  # a seeded stage; the CPU RNG state is restored after it
        torch.manual_seed(ctx.seed)
        out = fn(current, cfg, ctx)
    timings = {"run_s": time.perf_counter() - t0}
    if not isinstance(out, torch.nn.Module):
        raise rd.PipelineError(f"stage {name} returned {type(out).__name__}, not the model")
    bad = [n for n, t in out.state_dict().items() if t.is_floating_point() and not torch.isfinite(t).all()]
    if bad:  # never save (or continue from) a model with NaN/Inf weights
        raise rd.PipelineError(f"stage {name} produced non-finite values in {', '.join(bad[:4])}; nothing was saved")
    record = jsonable(ctx.record)
    out.history = list(getattr(out, "history", None) or []) + [
        {"stage": cfg.kind, "index": index, "recipe": recipe.name, "config": config, "hash": h, "record": record}]
    if not dist.active:
        saved = _save_and_reload(out, sdir / rd.MODEL_DIR, device, timings)
    else:  # rank 0 saves; every rank continues from what was saved
        dist.leader_call(lambda: save_model(out, sdir / rd.MODEL_DIR))
        saved = load_model(sdir / rd.MODEL_DIR, map_location=device)
    row = StageRow(index, cfg.kind, f"{rd.STAGES_DIR}/{name}", config, h, False, {}, timings, record)

    def measure_and_mark() -> StageRow:
        row.measurements = _measure(saved, task, sdir / rd.MODEL_DIR, recipe, row.timings)
        rd.write_json(sdir / rd.STAGE_JSON, _stage_json(row, prev_hash, measure_key))  # last: marks the stage done
        return row

    return dist.leader_call(measure_and_mark), saved


def run_pipeline(model, recipe: Recipe | str | Path, task: Any = None, out_dir: str | Path = "rnnslim-run",
                 resume: bool = True, progress: bool = True, device: str = "cpu") -> PipelineResult | None:
    """Run `recipe` on a copy of `model`; write out_dir (see rundir.py) and the report.
    Under torchrun, ranks other than 0 return None (rank 0 writes and returns the result).

    `recipe` may be a path to a YAML file (its task data path is then relative to it).
    `task` defaults to the one the recipe's `task:` section names. progress=False: no log
    lines and no progress bar (training, evaluation, calibration) in any stage.
    """
    from rnnslim.utils.progress import progress_scope

    dev = resolve_device(device)  # a clear error when CUDA is asked for and absent
    dist = join(dev, None)
    try:
        with progress_scope(progress and dist.leader):
            return _run_pipeline(model, recipe, task, out_dir, resume, progress and dist.leader,
                                 str(dist.device_for(dev)) if dist.active else device, dist)
    finally:
        dist.close()


def _run_pipeline(model, recipe: Recipe | str | Path, task: Any, out_dir: str | Path, resume: bool, progress: bool,
                  device: str, dist: Dist) -> PipelineResult | None:
    from rnnslim.report import write_report

    recipe, task = _recipe_and_task(model, recipe, task)
    out = Path(out_dir)
    dist.leader_call(lambda: rd.prepare_out_dir(out, recipe, resume))
    stages_root = out / rd.STAGES_DIR
    started, t_start = _now(), time.perf_counter()
    measure_key = dict_hash({"measure": recipe.measure, "splits": EVAL_SPLITS})

    # private copies: the stages' working model and the teacher; `model` itself is only read
    current = copy.deepcopy(model).to(device).eval()
    teacher = copy.deepcopy(model).to(device).eval().requires_grad_(False)
    in_hash = input_hash(current, task, recipe.seed)
    names = [rd.stage_dir_name(i, c.kind) for i, c in enumerate(recipe.stages, start=1)]
    in_dir = stages_root / rd.INPUT_DIR

    def input_row() -> StageRow:
        rd.remove_stale_stage_dirs(stages_root, {rd.INPUT_DIR, *names})
        return _input_row(current, model, task, recipe, in_dir, in_hash, measure_key, device, progress)[0]

    rows = [dist.leader_call(input_row)]  # [None] on ranks other than 0

    # the hash chain decides which stages are reusable; everything from the first miss re-runs
    hashes = _stage_hashes(recipe, in_hash)
    first_run = dist.broadcast_json(next((i for i, (n, h) in enumerate(zip(names, hashes))
                                          if not _is_complete(stages_root / n, h)), len(names)))  # rank 0's

    def clear_from_first_run() -> None:
        rd.clear_final_outputs(out)
        for n in names[first_run:]:
            rd.remove_stage_outputs(stages_root / n)

    if first_run < len(names):
        dist.leader_call(clear_from_first_run)

    # every stage starts from the previous model as loaded from disk (as a resumed run would)
    current, current_dir = None, in_dir / rd.MODEL_DIR
    try:
        for i, (cfg, name, h) in enumerate(zip(recipe.stages, names, hashes), start=1):
            sdir = stages_root / name
            if i - 1 < first_run:
                _log(progress, f"[{i}/{len(names)}] {name}: done in an earlier run, reusing it")
                rows.append(dist.leader_call(lambda: _reuse_row(rd.read_json(sdir / rd.STAGE_JSON), sdir,
                                                                f"{rd.STAGES_DIR}/{name}", task, recipe, measure_key,
                                                                device)))
                current, current_dir = None, sdir / rd.MODEL_DIR
                continue
            if current is None:
                current = load_model(current_dir, map_location=device)
            row, current = _run_stage(current, cfg, i, name, h, hashes[i - 2] if i > 1 else in_hash, sdir, task,
                                      teacher, recipe, measure_key, device, progress, dist)
            current_dir = sdir / rd.MODEL_DIR
            rows.append(row)
            if row is not None:
                _log(progress, f"[{i}/{len(names)}] {name}: {_summary(row, rows[0], task.primary_metric)}")
    except BaseException as e:
        done = sum(1 for r in rows if r is not None and r.index > 0)
        _log(progress, f"stopped ({type(e).__name__}) after {done} of {len(names)} stages; completed stages are "
                       f"kept in {stages_root}; run again to resume")
        raise

    def finish() -> PipelineResult:  # rank 0: the final model and the report
        final = current if current is not None else load_model(current_dir, map_location=device)
        save_model(final, out / rd.FINAL_MODEL)
        result = PipelineResult(recipe=recipe, out_dir=out, model=final, rows=rows, task=_task_summary(task),
                                device=device, started_at=started, finished_at=_now(),
                                wall_s=time.perf_counter() - t_start)
        result.report_paths = write_report(result, out)
        _log(progress, f"done: final model in {out / rd.FINAL_MODEL}, report in {result.report_paths.get('markdown')}")
        return result

    return dist.leader_call(finish)


def _recipe_and_task(model, recipe: Recipe | str | Path, task: Any) -> tuple[Recipe, Any]:
    """The recipe (loaded when given as a path) and the task (built from the recipe's `task:` section,
    data paths relative to the recipe file, when not given); every stage kind, and the fields that name
    parts of the model (layer indices, ...), checked before any work."""
    base_dir = None
    if not isinstance(recipe, Recipe):
        base_dir = Path(recipe).parent
        recipe = load_recipe(recipe)
    _check_fields_against(recipe, model)
    if task is None:
        if recipe.task is None:
            raise RecipeError(f"recipe {recipe.name!r} has no `task:` section; pass a task to run_pipeline")
        from rnnslim.pipeline.tasks import build_task

        task = build_task(recipe.task, model, base_dir)
    for cfg in recipe.stages:
        get_stage(cfg.kind)  # fail before any work if a stage module went missing
    return recipe, task


def _check_fields_against(recipe: Recipe, model) -> None:
    """Every stage's fields against the model it will receive, before any work: the stages up to
    and including the first that changes the structure (the later ones when they start)."""
    for i, cfg in enumerate(recipe.stages, start=1):
        _check_stage_fields(cfg, i, model)
        if cfg.changes_structure:
            break


def _check_stage_fields(cfg, index: int, model) -> None:
    """cfg.check_against(model) as a RecipeError naming the stage (1-based, like stages/NN-kind)."""
    try:
        cfg.check_against(model)
    except ValueError as e:
        raise RecipeError(f"stage #{index} (kind {cfg.kind!r}): {e}") from None


def _stage_hashes(recipe: Recipe, in_hash: str) -> list[str]:
    """Stage i's hash chains the input's hash and the configs of stages 1..i (fingerprint.config_hash)."""
    hashes, prev = [], in_hash
    for cfg in recipe.stages:
        prev = config_hash(cfg, prev)
        hashes.append(prev)
    return hashes


def _summary(row: StageRow, base: StageRow, metric: str) -> str:
    v, v0 = row.metric("valid", metric), base.metric("valid", metric)
    parts = []
    if v is not None:
        parts.append(f"valid {metric} {v:.4f}" + (f" ({v - v0:+.4f})" if v0 is not None else ""))
    parts.append(f"{row.measurements['artifact_bytes']:,} bytes")
    parts.append(f"{row.timings.get('run_s', 0.0):.1f} s")
    return ", ".join(parts)
