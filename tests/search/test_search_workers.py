"""Search processes: kill -9 then restart loses no finished trial and retries the killed one;
two workers on one journal finish N trials with none lost or run twice."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
from optuna.trial import TrialState
from search_helpers import cli_search, load_study, make_model


def _wait_for(pred, proc, timeout=240.0):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.2)
    return False


def _states(out):
    if not (out / "journal.log").exists():
        return {}
    try:
        study = load_study(out)
    except KeyError:  # the study is not created yet
        return {}
    return {t.number: t for t in study.get_trials(deepcopy=False)}


@pytest.mark.slow  # two search processes one after the other (each imports torch and optuna)
def test_kill_9_then_restart_continues_the_same_study(tmp_path):
    model, data = make_model(tmp_path)
    out = tmp_path / "search"
    proc = cli_search(model, data, out, 4, "--seed", "3")

    def one_done_one_running():
        ts = _states(out).values()
        return (any(t.state == TrialState.COMPLETE for t in ts)
                and any(t.state == TrialState.RUNNING and "recipe_hash" in t.user_attrs for t in ts))

    assert _wait_for(one_done_one_running, proc), proc.communicate()[1][-3000:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = _states(out)
    done = {n: t.values for n, t in before.items() if t.state == TrialState.COMPLETE}
    killed = [n for n, t in before.items() if t.state == TrialState.RUNNING]
    assert done and len(killed) == 1

    again = cli_search(model, data, out, 4, "--seed", "3")
    stdout, stderr = again.communicate(timeout=240)
    assert again.returncode == 0, stderr[-3000:]
    after = _states(out)
    complete = {n: t for n, t in after.items() if t.state == TrialState.COMPLETE}
    assert len(complete) == 4
    for n, values in done.items():  # nothing finished before the kill was lost or re-run
        assert complete[n].values == values
    dead = after[killed[0]]
    assert dead.state == TrialState.FAIL and "worker died" in dead.user_attrs["error"]
    retry = [t for t in complete.values() if t.system_attrs.get("retry_of") == killed[0]]
    assert len(retry) == 1 and retry[0].params == dead.params, [
        (t.number, t.state.name, t.system_attrs, t.user_attrs.get("error")) for t in after.values()]
    summary = json.loads(stdout)
    assert summary["states"]["COMPLETE"] == 4 and summary["states"]["FAIL"] == 1


@pytest.mark.slow  # two search processes side by side
def test_two_workers_on_one_journal_finish_n_trials_once_each(tmp_path):
    model, data = make_model(tmp_path)
    out = tmp_path / "search"
    n = 5
    procs = [cli_search(model, data, out, n, "--seed", str(s)) for s in (1, 2)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
    trials = _states(out)
    complete = [t for t in trials.values() if t.state == TrialState.COMPLETE]
    assert sorted(t.number for t in complete) == sorted({t.number for t in complete}) and len(complete) == n
    assert all(t.user_attrs.get("surplus") for t in trials.values() if t.state == TrialState.FAIL)
    pids = {t.system_attrs["rnnslim_worker"]["pid"] for t in complete}
    assert pids <= {p.pid for p in procs}
    # a recipe runs once: a second trial with the same recipe hash reuses the first's result. A recipe
    # with every dimension off runs nothing (the input model's numbers, no run directory), so two
    # workers may both report it without running anything twice
    ran = [t for t in complete if "reused_from" not in t.user_attrs and not t.user_attrs.get("reused_dir")
           and t.user_attrs["result"]["run_dir"] is not None]
    hashes = [t.user_attrs["recipe_hash"] for t in ran]
    assert len(hashes) == len(set(hashes))
    for t in complete:
        if "reused_from" in t.user_attrs:
            src = trials[t.user_attrs["reused_from"]]
            assert src.user_attrs["recipe_hash"] == t.user_attrs["recipe_hash"] and src.values == t.values
        run_dir = t.user_attrs["result"]["run_dir"]
        assert run_dir is None or (out / "trials" / t.user_attrs["recipe_hash"] / "search.json").exists()
