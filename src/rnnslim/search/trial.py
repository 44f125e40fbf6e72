"""One trial: sample a recipe, run it rung by rung with the pipeline, return its objectives.

    ctx = TrialContext.build(cfg)            # once per worker: model, task, baseline, caps
    values = run_trial(ctx, trial)           # [loss, bytes, latency_ms] (latency when measured)

Layout of the search directory:

    OUT/input/model/            the input model as saved by rnnslim (baseline bytes, workers load it)
    OUT/trials/<hash>/          the trial's pipeline run directory (rnnslim compress layout);
                                <hash> is the full recipe's hash, so a retried trial resumes it
    OUT/trials/<hash>/search.json   the trial's result, written last (a second trial that
                                samples the same recipe reuses it instead of running again)

Size before cost: before its first rung a trial's artifact bytes are predicted from its shapes
and bit widths (rnnslim.search.size, no re-fit, no fine-tune); a trial predicted over the byte
cap raises OverByteCap with its result recorded (fidelity "predicted", its predicted bytes, a
bytes constraint of predicted / cap - 1) and the worker tells it PRUNED with that constraint,
so the sampler learns where the feasible region is without paying for a fine-tune there. With
SearchConfig.size_floor set, a trial predicted under size_floor x the cap is pruned the same way
(UnderByteFloor, bytes constraint floor / predicted - 1): a prior that keeps a `prefer bytes` search
in the band just under the cap, where a recipe can still hold the loss cap.
Where codes are lzma-coded the prediction is an estimate (the skeleton's bytes, decisive for
pruning) with an upper bound beside it (user attr predicted_bytes_upper, size.predict_bytes_bounds).

Same recipe twice: a trial whose recipe hash matches a COMPLETE trial of the study copies
its values (user attr `reused_from`); one that matches a trial still running on this host
waits for its lock on the run directory and then reuses its search.json.
"""

from __future__ import annotations

import fcntl
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rnnslim.search.budget import OBJECTIVES, Budget, constraint_values
from rnnslim.search.config import SearchConfig
from rnnslim.search.fidelity import promote, recovery_family, rung_plan
from rnnslim.search.space import ModelFacts, build_stages

INPUT_DIR = "input"
TRIALS_DIR = "trials"
TRIAL_RESULT = "search.json"
BASELINE_ATTR = "baseline"


class OutsideByteBand(Exception):
    """A trial whose predicted bytes are outside the band the search runs: it ends before any training."""


class OverByteCap(OutsideByteBand):
    """Predicted over the byte cap."""


class UnderByteFloor(OutsideByteBand):
    """Predicted under the size floor (SearchConfig.size_floor x the byte cap)."""


@dataclass
class TrialContext:
    cfg: SearchConfig
    model: Any
    task: Any
    facts: ModelFacts
    budget: Budget
    baseline: dict = field(default_factory=dict)  # loss (full valid), loss_subset, test_loss, bytes, latency_ms
    caps: dict = field(default_factory=dict)  # absolute caps {loss, bytes, latency_ms}
    log: Any = None

    @property
    def higher_is_better(self) -> bool:
        return bool(self.task.higher_is_better)

    @property
    def metric(self) -> str:
        return self.task.primary_metric

    def objectives(self) -> list[str]:
        return ["loss", "bytes"] + (["latency_ms"] if self.cfg.latency else [])

    def directions(self) -> list[str]:
        return ["maximize" if self.higher_is_better else "minimize"] + ["minimize"] * (len(self.objectives()) - 1)

    def task_section(self) -> dict | None:
        if self.cfg.data is None and not self.cfg.task_options:
            return None
        sec: dict = {"name": self.task.name}
        if self.cfg.data is not None:
            sec["data"] = str(Path(self.cfg.data).expanduser().resolve())
        if self.cfg.task_options:
            sec["options"] = dict(self.cfg.task_options)
        return sec


def load_task(cfg: SearchConfig, model):
    from rnnslim.tasks import make_task, task_for_model

    if cfg.task:
        task = make_task(cfg.task, cfg.data, getattr(model, "task_meta", None) or {}, **cfg.task_options)
        task.check_model(model)
        return task
    return task_for_model(model, data=cfg.data, **cfg.task_options)


def measure_latency(model, cfg: SearchConfig) -> float | None:
    if not cfg.latency:
        return None
    from rnnslim.measure.latency import streaming_latency

    return float(streaming_latency(model, threads=cfg.threads, steps=cfg.latency_steps,
                                   repeats=cfg.latency_repeats, warmup=20)["median_ms"])


def _evaluate(ctx: TrialContext, model, split: str, tokens: int | None) -> float:
    return float(ctx.task.evaluate(model, split, max_steps=tokens)[ctx.metric])


def measure_baseline(ctx: TrialContext) -> dict:
    """The input model's numbers the budget and the reports are relative to."""
    from rnnslim.io.format import artifact_bytes

    model, cfg = ctx.model, ctx.cfg
    return {"loss": _evaluate(ctx, model, "valid", cfg.full_eval_tokens),
            "loss_subset": _evaluate(ctx, model, "valid", cfg.eval_tokens),
            "test_loss": _evaluate(ctx, model, "test", cfg.full_eval_tokens),
            "bytes": artifact_bytes(cfg.out_dir / INPUT_DIR / "model"),
            "latency_ms": measure_latency(model, cfg)}


def trial_recipe(ctx: TrialContext, stages: list[dict], name: str, full: bool = False) -> dict:
    """A recipe mapping for `stages`; the full one (written as best.yaml) measures whole splits and latency."""
    cfg = ctx.cfg
    measure = ({"latency": cfg.latency, "threads": cfg.threads} if full else
               {"latency": False, "threads": cfg.threads, "eval_max_steps": cfg.eval_tokens})
    recipe: dict = {"version": 1, "name": name, "seed": cfg.recipe_seed}
    task = ctx.task_section()
    if task is not None:
        recipe["task"] = task
    return {**recipe, "measure": measure, "stages": stages}


def recipe_hash(stages: list[dict], cfg: SearchConfig) -> str:
    from rnnslim.pipeline.fingerprint import dict_hash

    return dict_hash({"stages": stages, "seed": cfg.recipe_seed})[:16]


def _peers(study, trial_number: int, rung: str, rhash: str) -> list[dict]:
    out = []
    for t in study.get_trials(deepcopy=False):
        rec = t.user_attrs.get(f"rung_{rung}")
        if t.number != trial_number and isinstance(rec, dict) and t.user_attrs.get("recipe_hash") != rhash:
            out.append(rec)
    return out


def _reuse_complete(study, trial, rhash: str) -> list[float] | None:
    from optuna.trial import TrialState

    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if t.user_attrs.get("recipe_hash") == rhash and t.number != trial.number and "result" in t.user_attrs:
            trial.set_user_attr("result", t.user_attrs["result"])
            trial.set_user_attr("reused_from", t.number)
            return list(t.values)
    return None


class _DirLock:
    """An exclusive lock on a trial's run directory (released by the OS if the process dies)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(path, "a+")  # noqa: SIM115 - held for the trial's lifetime
        fcntl.flock(self._f, fcntl.LOCK_EX)

    def close(self) -> None:
        fcntl.flock(self._f, fcntl.LOCK_UN)
        self._f.close()


def values_of(result: dict, objectives: list[str]) -> list[float]:
    return [float(result[k]) for k in objectives]


def run_trial(ctx: TrialContext, study, trial) -> list[float]:
    """Run `trial` (an Optuna trial of `study`) through its rungs; its objective values."""
    from rnnslim.pipeline.recipe import Recipe
    from rnnslim.pipeline.runner import run_pipeline
    from rnnslim.utils.atomic import write_json_atomic

    cfg = ctx.cfg
    stages = build_stages(cfg.space, trial, ctx.facts)
    _check_warm_start(study, trial)
    rhash = recipe_hash(stages, cfg)
    full_recipe = trial_recipe(ctx, stages, f"search-{rhash}", full=True) if stages else None
    trial.set_user_attr("recipe_hash", rhash)
    trial.set_user_attr("recipe", full_recipe)
    reused = _reuse_complete(study, trial, rhash)
    if reused is not None:
        return reused
    if not stages:  # every dimension chose "off": the trial is the input model itself
        result = {**_baseline_result(ctx), "fidelity": "full", "rungs": [], "run_dir": None}
        trial.set_user_attr("result", result)
        return values_of(result, ctx.objectives())
    predicted = _predicted_bytes(ctx, trial, full_recipe)
    run_dir = cfg.out_dir / TRIALS_DIR / rhash
    lock = _DirLock(cfg.out_dir / TRIALS_DIR / f"{rhash}.lock")
    try:
        done = _read_result(run_dir / TRIAL_RESULT)
        if done is not None:
            trial.set_user_attr("result", done)
            trial.set_user_attr("reused_dir", True)
            return values_of(done, ctx.objectives())
        result = {**_run_rungs(ctx, study, trial, stages, rhash, run_dir, Recipe, run_pipeline),
                  "predicted_bytes": predicted}
        write_json_atomic(run_dir / TRIAL_RESULT, result)
    finally:
        lock.close()
    trial.set_user_attr("result", result)
    return values_of(result, ctx.objectives())


def _predicted_bytes(ctx: TrialContext, trial, full_recipe: dict) -> int:
    """The trial's artifact bytes from its shapes and bit widths (rnnslim.search.size), recorded;
    OverByteCap, with the trial's result recorded, when they are over the byte cap."""
    from rnnslim.pipeline.recipe import Recipe
    from rnnslim.search.size import predict_bytes_bounds

    t0 = time.perf_counter()
    estimate, upper = predict_bytes_bounds(ctx.model, ctx.task, Recipe.from_dict(full_recipe,
                                                                                source=f"trial {trial.number}"))
    predicted = estimate  # what the pruning decides on: a trial whose estimate is over the cap cannot fit
    trial.set_user_attr("predicted_bytes", predicted)
    if upper != estimate:  # lzma-coded codes: their final size depends on values the fine-tune changes
        trial.set_user_attr("predicted_bytes_upper", upper)
    cap = ctx.caps.get("bytes")
    if cap is None:
        return predicted
    floor = None if ctx.cfg.size_floor is None else ctx.cfg.size_floor * cap
    if predicted > cap:
        excess = predicted / cap - 1
        error: OutsideByteBand = OverByteCap(f"predicted {predicted:,} bytes, {100 * excess:.1f} % over the cap "
                                             f"of {cap:,.0f}")
    elif floor is not None and predicted < floor:  # the prior: far smaller than the cap rarely holds the loss
        excess = floor / predicted - 1
        error = UnderByteFloor(f"predicted {predicted:,} bytes, under the size floor of {floor:,.0f} "
                               f"({ctx.cfg.size_floor:g} x the cap)")
    else:
        return predicted
    trial.set_user_attr("result", {"loss": None, "test_loss": None, "bytes": predicted, "predicted_bytes": predicted,
                                   "latency_ms": None, "fidelity": "predicted", "rungs": [], "run_dir": None,
                                   "wall_s": time.perf_counter() - t0,
                                   "constraints": [0.0 if k != "bytes" else excess for k in OBJECTIVES]})
    raise error


def _check_warm_start(study, trial) -> None:
    """An enqueued (warm-start) point whose names the space never asked for would run as some
    other recipe without a word (Optuna ignores them): fail the trial, naming them."""
    fixed = study._storage.get_trial_system_attrs(trial._trial_id).get("fixed_params") or {}
    unused = sorted(set(fixed) - set(trial.params))
    if unused:
        raise ValueError(f"warm-start point {fixed} names {unused}, which this search space does not sample "
                         f"(its parameters here: {sorted(trial.params)}); fix the names or the space")


def _baseline_result(ctx: TrialContext) -> dict:
    b = ctx.baseline
    return {"loss": b["loss"], "test_loss": b["test_loss"], "bytes": b["bytes"], "latency_ms": b["latency_ms"],
            "constraints": constraint_values(b, ctx.caps, ctx.higher_is_better)}


def _read_result(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and "loss" in data else None


def _run_rungs(ctx: TrialContext, study, trial, stages, rhash, run_dir: Path, Recipe, run_pipeline) -> dict:
    cfg = ctx.cfg
    ft = cfg.space.finetune
    plan = rung_plan(stages, ft.proxy_steps, ft.proxy_rungs, cfg.eta)
    latency = None
    rungs = []
    record: dict = {}
    t0 = time.perf_counter()
    for i, (rung, rung_stages) in enumerate(plan):
        recipe = Recipe.from_dict(trial_recipe(ctx, rung_stages, f"search-{rhash}"), source=f"trial {trial.number}")
        res = run_pipeline(ctx.model, recipe, ctx.task, run_dir, progress=False)
        row = res.final_row
        if latency is None and cfg.latency:  # structure (and so latency) is fixed from the first rung on
            latency = measure_latency(res.model, cfg)
        record = {"loss": row.metric("valid", ctx.metric), "bytes": int(row.measurements["artifact_bytes"]),
                  "latency_ms": latency, "wall_s": round(res.wall_s, 3),
                  **({"family": recovery_family(stages)} if cfg.promotion == "by_family" else {})}
        trial.set_user_attr(f"rung_{rung}", record)
        rungs.append(rung)
        if i + 1 < len(plan):
            go, why = promote(record, _peers(study, trial.number, rung, rhash), ctx.caps, cfg.eta,
                              ctx.higher_is_better)
            trial.set_user_attr(f"promote_{rung}", why)
            if not go:
                break
    full = rungs[-1] == "full"
    result = {**record, "fidelity": rungs[-1], "rungs": rungs, "run_dir": str(run_dir), "wall_s": time.perf_counter() - t0,
              "loss_subset": record["loss"], "test_loss": None}
    if full:  # the trial's loss: the whole validation split; the test split is reported only
        result["loss"] = _evaluate(ctx, res.model, "valid", cfg.full_eval_tokens)
        result["test_loss"] = _evaluate(ctx, res.model, "test", cfg.full_eval_tokens)
    if result["loss"] is None or not math.isfinite(result["loss"]):
        raise ValueError(f"trial {trial.number}: the {ctx.metric} is not a finite number ({result['loss']})")
    caps = dict(ctx.caps)
    if not full and "loss" in caps and ctx.baseline.get("loss"):  # a subset loss meets a cap scaled to the subset
        caps["loss"] *= ctx.baseline["loss_subset"] / ctx.baseline["loss"]
    result["constraints"] = constraint_values(result, caps, ctx.higher_is_better)
    return result
