"""The search loop: workers that ask Optuna for trials until the study has enough.

    result = search("charlstm-512x2.json", data="tiny.txt", budget="bytes=1/20,loss=+2%",
                    trials=30, out="runs/search")              # = rnnslim.search(...)
    result["best"]["recipe"]  ->  runs/search/best.yaml

Each worker (this process, `workers - 1` spawned ones, or `rnnslim search` started by hand
on other machines with the same --storage and --study-name) loops:

    fail + re-queue trials of dead workers (storage.recover_stale)
    stop when COMPLETE + RUNNING trials reach `trials` (or this worker ran n_trials,
        or its time_budget_s is spent: no new trial starts after it)
    ask -> run the trial's rungs (trial.run_trial) -> tell its values (or FAIL with the error)

A trial asked while the study already has `trials` ahead of it (two workers asked at the
same moment) is told FAIL with user attr `surplus` before it runs anything, so a study ends
with exactly `trials` COMPLETE trials unless trials fail. Ctrl-C fails the running trial
and queues it again, like a killed worker. Every worker writes the results when it stops.

A trial predicted over the byte cap (trial.OverByteCap: bytes from its shapes and bit widths,
before any re-fit or fine-tune) is told PRUNED with its byte excess as its constraint; it does
not count toward `trials`, and the sampler ranks it among the infeasible ones by that excess.

Sampler: TPE (multi-objective, constant liar for parallel workers) or NSGA-II, both with
the budget's constraints_func: a trial is feasible when all its constraint values are <= 0.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from rnnslim.search.budget import OBJECTIVES, Budget
from rnnslim.search.config import SearchConfig
from rnnslim.search.references import check_metric
from rnnslim.search.space import ModelFacts, active_dimensions
from rnnslim.search.storage import (WORKER_ATTR, Heartbeat, check_storage, open_storage, recover_stale,
                                    worker_identity)
from rnnslim.search.trial import (BASELINE_ATTR, INPUT_DIR, OutsideByteBand, TrialContext, load_task, measure_baseline,
                                  run_trial)

KEY_ATTR = "rnnslim_study_key"
MAX_OVER_CAP_IN_A_ROW = 200  # trials pruned for their predicted bytes, in a row, before the search gives up


def _constraints(frozen) -> list[float]:
    res = frozen.user_attrs.get("result") or {}
    return list(res.get("constraints") or [0.0, 0.0, 0.0])


def _native_constraints() -> bool:
    """Optuna >= 5 takes constraints from trial.set_constraint (constraints_func is deprecated)."""
    import optuna

    return hasattr(optuna.trial.Trial, "set_constraint")


def set_constraints(trial, constraints: list[float]) -> None:
    if _native_constraints():
        for key, value in zip(OBJECTIVES, constraints):
            trial.set_constraint(key, float(value))


def make_sampler(cfg: SearchConfig, worker_index: int = 0):
    import optuna

    seed = None if cfg.seed is None else cfg.seed + worker_index
    cons = {} if _native_constraints() else {"constraints_func": _constraints}
    if cfg.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(population_size=max(4, min(50, cfg.trials // 3)), seed=seed, **cons)
    startup = cfg.startup_trials or max(3, min(10, cfg.trials // 3))
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # multivariate, constant_liar
    return optuna.samplers.TPESampler(n_startup_trials=startup, seed=seed, multivariate=True, constant_liar=True,
                                      **cons)


def _input_model(cfg: SearchConfig):
    """The input model, saved once into OUT/input/model (its bytes are the baseline's)."""
    from rnnslim.io.format import load_model, save_model

    saved = cfg.out_dir / INPUT_DIR / "model"
    if not (saved / "model.json").exists():
        save_model(load_model(cfg.model), saved)
    return load_model(saved)


def _study(cfg: SearchConfig, ctx: TrialContext, worker_index: int):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(cfg.storage, cfg.out_dir)
    study = optuna.create_study(storage=storage, study_name=cfg.study_name, directions=ctx.directions(),
                                sampler=make_sampler(cfg, worker_index), load_if_exists=True)
    if [d.name.lower() for d in study.directions] != ctx.directions():
        raise ValueError(f"study {cfg.study_name!r} optimizes {len(study.directions)} objectives, this search "
                         f"{len(ctx.directions())} (latency on/off); use another --study-name")
    key = cfg.study_key()
    old = study.user_attrs.get(KEY_ATTR)
    if old is None:
        study.set_user_attr(KEY_ATTR, key)
        for params in cfg.enqueue:  # a new study only: a resumed one already holds (or ran) them
            study.enqueue_trial(dict(params), skip_if_exists=True)
    elif old != key:
        changed = sorted(k for k in set(old) | set(key) if old.get(k) != key.get(k))
        raise ValueError(f"study {cfg.study_name!r} was started with another search space or scoring "
                         f"({', '.join(changed)} differ); use another --study-name or the same settings")
    return study


def prepare(cfg: SearchConfig, worker_index: int = 0, log=None) -> tuple[TrialContext, Any]:
    """(trial context, study): load the model and task, join or start the study, the baseline."""
    import torch

    torch.set_num_threads(cfg.threads)
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    model = _input_model(cfg)
    task = load_task(cfg, model)
    budget = Budget.parse(cfg.budget, cfg.prefer)
    ctx = TrialContext(cfg=cfg, model=model, task=task, facts=ModelFacts.of(model), budget=budget, log=log)
    check_metric(cfg.references, ctx.metric)  # before the study: a reference on another axis is a setup error
    study = _study(cfg, ctx, worker_index)
    baseline = study.user_attrs.get(BASELINE_ATTR)
    if baseline is None:
        _say(log, "measuring the input model (baseline)")
        study.set_user_attr(BASELINE_ATTR, measure_baseline(ctx))
        baseline = study.user_attrs[BASELINE_ATTR]  # the stored one: all workers use the first writer's
    ctx.baseline = baseline
    ctx.caps = budget.resolve(baseline, ctx.higher_is_better)
    return ctx, study


def _say(log, msg: str) -> None:
    if log is not None:
        log(msg)


def _active(study) -> list:
    """Trials that count toward `trials`: finished or running. WAITING ones (warm-start points,
    re-queued trials of dead workers) do not: the next ask() runs them, so a worker must not stop
    while one waits."""
    from optuna.trial import TrialState

    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING))


def _describe(values: list[float], ctx: TrialContext) -> str:
    parts = [f"{ctx.metric} {values[0]:.4f}", f"{int(values[1]):,} B"]
    if len(values) > 2:
        parts.append(f"{values[2]:.4f} ms")
    return ", ".join(parts)


def run_worker(cfg: SearchConfig, worker_index: int = 0, n_trials: int | None = None, log=None,
               progress: bool = False) -> dict:
    """One worker's loop (see the module docstring); the results written when it stops."""
    from optuna.trial import TrialState

    from rnnslim.search.results import write_outputs
    from rnnslim.utils.progress import progress_bar

    started = time.monotonic()
    ctx, study = prepare(cfg, worker_index, log)
    ran = failures = over_cap = 0
    bar = progress_bar(cfg.trials, len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))),
                       f"search {cfg.study_name}", enabled=progress)
    try:
        while n_trials is None or ran < n_trials:
            recover_stale(study, cfg.grace_s, log=log)
            if len(_active(study)) >= cfg.trials:
                break
            if cfg.time_budget_s is not None and time.monotonic() - started > cfg.time_budget_s:
                _say(log, f"time budget of {cfg.time_budget_s:.0f} s used; stopping (run again to continue)")
                break
            trial = study.ask()
            study._storage.set_trial_system_attr(trial._trial_id, WORKER_ATTR, worker_identity())
            beat = Heartbeat(study._storage, trial._trial_id, cfg.heartbeat_s)
            try:
                ahead = [t for t in _active(study) if t.number < trial.number]
                if len(ahead) >= cfg.trials:  # another worker asked at the same moment
                    trial.set_user_attr("surplus", True)
                    study.tell(trial, state=TrialState.FAIL)
                    break
                t0 = time.perf_counter()
                try:
                    values = run_trial(ctx, study, trial)
                except OutsideByteBand as e:  # size before cost: no rung ran
                    res = trial.user_attrs.get("result") or {}
                    set_constraints(trial, res.get("constraints") or [])
                    study.tell(trial, state=TrialState.PRUNED)
                    over_cap += 1
                    _say(log, f"trial {trial.number}: pruned before training, {e} "
                              f"[{time.perf_counter() - t0:.2f} s]")
                    if over_cap >= MAX_OVER_CAP_IN_A_ROW:
                        raise RuntimeError(f"{over_cap} trials in a row were outside the byte band (cap, size "
                                           "floor) before training; the space can hardly reach it: allow smaller "
                                           "widths or fewer bits, or lower the size floor") from e
                    continue
                except KeyboardInterrupt:
                    trial.set_user_attr("error", "interrupted (queued again)")
                    study.tell(trial, state=TrialState.FAIL)
                    _requeue(study, trial)
                    raise
                except Exception as e:  # noqa: BLE001 - a broken trial fails alone, the search goes on
                    failures += 1
                    trial.set_user_attr("error", f"{type(e).__name__}: {e}"[:2000])
                    study.tell(trial, state=TrialState.FAIL)
                    _say(log, f"trial {trial.number}: FAILED ({type(e).__name__}: {str(e)[:300]})")
                    if failures >= cfg.max_failures:
                        raise RuntimeError(f"{failures} trials in a row failed; last: {type(e).__name__}: {e}") from e
                    continue
                failures = over_cap = 0
                res = trial.user_attrs.get("result") or {}
                set_constraints(trial, res.get("constraints") or [])
                study.tell(trial, values)
                _say(log, f"trial {trial.number}: {_describe(values, ctx)} [{res.get('fidelity')}] "
                          f"{time.perf_counter() - t0:.1f} s")
                bar.update(1, last=trial.number)
                ran += 1
            finally:
                beat.close()
    finally:
        bar.close()
        dims = active_dimensions(cfg.space)[1]
        results = write_outputs(study, ctx, {"skipped_dimensions": dims})
    return results


def _requeue(study, trial) -> None:
    import optuna

    frozen = study._storage.get_trial(trial._trial_id)
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.WAITING, params=frozen.params,
                                              distributions=frozen.distributions,
                                              system_attrs={"retry_of": frozen.number,
                                                            "retry_history": [frozen.number]}))


def _spawned_worker(cfg_json: str, index: int, n_trials: int | None) -> None:
    cfg = SearchConfig.model_validate_json(cfg_json)
    run_worker(cfg, index, n_trials)


def search(model: Any, data: str | os.PathLike | None = None, budget: str = "", trials: int = 20,
           out: str | os.PathLike = "rnnslim-search", storage: str | None = None, workers: int = 1,
           n_trials: int | None = None, study_name: str = "rnnslim-search", log=None, progress: bool = False,
           **options) -> dict:
    """Search recipes for `model` (a path, or a SequenceModel saved into OUT/input first).

    budget: "bytes=1/20,latency_ms=0.5,loss=+2%" (any subset); trials: what the study should
    finish over all workers; workers: processes on this machine (this one included); n_trials:
    at most this many trials run by this process; other keyword options are SearchConfig
    fields (space=SearchSpace(...), eval_tokens, sampler, seed, prefer, latency, threads, ...).
    Returns the results dict (also in OUT/results.json).
    """
    from rnnslim.io.format import save_model

    out = Path(out)
    if not isinstance(model, (str, os.PathLike)):
        saved = out / INPUT_DIR / "model"
        if not (saved / "model.json").exists():
            save_model(model, saved)
        model = saved
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    cfg = SearchConfig(model=str(model), out=str(out), data=None if data is None else str(data), budget=budget or "",
                       trials=trials, storage=storage, study_name=study_name, **options)
    Budget.parse(cfg.budget, cfg.prefer)  # a bad budget fails before any process starts
    check_storage(cfg.storage)  # so does a --storage that is not a journal, before anything is written
    if workers > 1:
        prepare(cfg, 0, log)  # the input model and the baseline once, before the others start
    procs = []
    mp = multiprocessing.get_context("spawn")
    per = None if n_trials is None else math.ceil(n_trials / workers)
    for i in range(1, workers):
        p = mp.Process(target=_spawned_worker, args=(cfg.model_dump_json(), i, per), daemon=False)
        p.start()
        procs.append(p)
    try:
        results = run_worker(cfg, 0, per if workers > 1 else n_trials, log, progress)
    finally:
        for p in procs:
            p.join()
    if procs:
        bad = [p.exitcode for p in procs if p.exitcode]
        from rnnslim.search.results import write_outputs  # the last word: every worker's trials

        ctx, study = prepare(cfg, 0)
        results = write_outputs(study, ctx, {"skipped_dimensions": active_dimensions(cfg.space)[1],
                                             "worker_exit_codes": bad})
    return results


def default_log(msg: str) -> None:
    print(f"[rnnslim search] {msg}", file=sys.stderr, flush=True)
