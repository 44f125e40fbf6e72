"""Re-run one trial of a v3 / v4 search with `rnnslim compress` and check that it reproduces (issue 23):
the trial's recipe (as the search ran it at full fidelity: whole-split evaluation) is written to
benchmarks/recipes/search-<version>-<model>-trial<N>.yaml, run in a fresh process, and its artifact bytes
and validation / test loss compared with the trial's.

    python benchmarks/search_reproduce.py --model charlstm-512x2             # the smallest trial at
                                                                            # <= 1/40 within +2 % test, else the best
    python benchmarks/search_reproduce.py --model charlstm-512x2 --trial 17
    python benchmarks/search_reproduce.py --model charlstm-512x2 --best      # the search's own best (best.yaml)

Reads the study in benchmarks/runs/search_<model>-<version> (journal) and the committed
benchmarks/results/search_<model>-<version>.json; writes benchmarks/results/search_reproduce_<model>.json
(one entry per trial re-run, atomically). Without the study (not committed: on another machine) the
recipe is rebuilt from the trial's parameters in the committed JSON and checked against its recorded
recipe hash. The run directory is benchmarks/runs/<model>/search-<version>-trial<N> (a killed run
resumes its finished stages).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA, MODELS, RESULTS, ROOT, RUNS, provenance  # noqa: E402
from search_bench import SPACES  # noqa: E402  (the study versions)

RECIPES = ROOT / "benchmarks" / "recipes"


def pick_trial(summary: dict, best: bool) -> int:
    """--best: the search's best; else the smallest full-fidelity trial within the budget at <= 1/40 of
    the fp32 bytes within +2 % test loss (the size goal), else the best."""
    if not best:
        goal = [t for t in summary.get("full_fidelity_trials", []) if t.get("meets_1_40_on_test") and t.get("within_budget")]
        if goal:
            return min(goal, key=lambda t: t["bytes"])["trial"]
    if not summary.get("best"):
        raise SystemExit("the search has no best trial yet (no trial reached the full fine-tune)")
    return summary["best"]["trial"]


def trial_recipe(model: str, trial: int, version: str, summary: dict) -> dict:
    """The trial's full-fidelity recipe from its study's journal, else (the study directory is not
    committed, so on another machine) rebuilt from the committed parameters (recipe_from_params)."""
    import optuna

    from rnnslim.search.storage import open_storage

    search_dir = RUNS / f"search_{model}-{version}"
    if not (search_dir / "journal.log").exists():
        return recipe_from_params(model, trial, version, summary)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=f"search-{model}-{version}", storage=open_storage(None, search_dir))
    recipe = study.trials[trial].user_attrs.get("recipe")
    if recipe is None:
        raise SystemExit(f"trial {trial} of search-{model}-{version} holds no full-fidelity recipe")
    return recipe


def recipe_from_params(model: str, trial: int, version: str, summary: dict) -> dict:
    """The recipe the search ran for `trial`, rebuilt from its parameters in the committed JSON with the
    version's space (stages_from_params), checked against the trial's recipe hash where the JSON records
    it (its `recipe_hash`, or the best trial's run directory, trials/<hash>)."""
    from types import SimpleNamespace

    from rnnslim.io.format import load_model
    from rnnslim.search.space import ModelFacts, stages_from_params
    from rnnslim.search.trial import recipe_hash

    row = next(t for t in summary["trials"] if t["trial"] == trial)
    stages = stages_from_params(SPACES[version](), row["params"], ModelFacts.of(load_model(MODELS / f"{model}.json")))
    seed = 0  # search_bench.py leaves SearchConfig.recipe_seed at its default
    rhash = recipe_hash(stages, SimpleNamespace(recipe_seed=seed))
    best = summary.get("best") or {}
    recorded = row.get("recipe_hash") or (Path(best["run_dir"]).name if best.get("trial") == trial and best.get("run_dir")
                                          else None)
    if recorded is not None and recorded != rhash:
        raise SystemExit(f"trial {trial}'s parameters rebuild recipe {rhash}, but the search ran {recorded}: "
                         f"the {version} space has changed since; re-run it from its study's journal")
    print(f"trial {trial}: recipe rebuilt from the committed parameters (hash {rhash}, "
          f"{'matches the recorded one' if recorded else 'no recorded hash to check'})", file=sys.stderr)
    return {"version": 1, "name": f"search-{rhash}", "seed": seed, "task": {"name": "charlm", "data": str(DATA)},
            "measure": {"latency": True, "threads": 1}, "stages": stages}


def write_recipe(model: str, trial: int, recipe: dict, row: dict, version: str) -> Path:
    import yaml

    from rnnslim.utils.atomic import write_text_atomic

    recipe = dict(recipe)
    # the name stays the search's (search-<recipe hash>): every stage's record in the saved manifest holds it,
    # so a renamed recipe gives an artifact a few bytes longer (v7 trial 32: 7 stages x 9 characters = 63 B)
    # trials recorded before prune_units said its `reduce` and `refit` ran under the defaults of then (l1,
    # true): the study's space names them, so the re-run cuts and re-fits as the trial did whatever
    # prune_units' defaults are now (refit auto would skip the re-fit before a fine-tune)
    space = SPACES[version]()
    recipe["stages"] = [{**s, "reduce": s.get("reduce", space.unit_reduce), "refit": s.get("refit", space.refit)}
                        if s.get("kind") == "prune_units" else s for s in recipe["stages"]]
    if "task" in recipe:  # relative to this file: ../shared beside the repository, as on every machine
        recipe["task"] = {**recipe["task"], "data": os.path.relpath(DATA, RECIPES)}
    header = (f"# Found by the {version} search on {model} (no warm start; benchmarks/search_bench.py), trial {trial}:\n"
              f"# valid {row['valid_loss']:.4f} ({row['valid_loss_change_pct']:+.2f} %), test {row['test_loss']:.4f} "
              f"({row['test_loss_change_pct']:+.2f} %), {row['bytes']:,} bytes ({row['fp32_ratio']:.1f}x smaller than fp32)\n"
              f"# parameters: {json.dumps(row['params'])}\n"
              f"# re-run: rnnslim compress ../shared/models/{model}.json --recipe {RECIPES.relative_to(ROOT)}/"
              f"search-{version}-{model}-trial{trial}.yaml --out DIR (benchmarks/search_reproduce.py checks it)\n")
    path = RECIPES / f"search-{version}-{model}-trial{trial}.yaml"
    write_text_atomic(path, header + yaml.safe_dump(recipe, sort_keys=False))
    return path


def rerun(model: str, trial: int, recipe: Path, version: str) -> tuple[float, list[str]]:
    """`rnnslim compress` of the recipe in a fresh process: (wall seconds, command); the run's
    report.json is read by the caller (load_reference)."""
    out = RUNS / model / f"search-{version}-trial{trial}"
    cmd = [sys.executable, "-m", "rnnslim.cli", "compress", str(MODELS / f"{model}.json"), "--recipe", str(recipe),
           "--out", str(out), "--json"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0, cmd


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="charlstm-512x2")
    ap.add_argument("--version", default="v4", choices=tuple(SPACES))
    pick = ap.add_mutually_exclusive_group()
    pick.add_argument("--trial", type=int, default=None)
    pick.add_argument("--best", action="store_true")
    args = ap.parse_args()
    from rnnslim.search.references import load_reference
    from rnnslim.utils.atomic import write_json_atomic

    summary = json.loads((RESULTS / f"search_{args.model}-{args.version}.json").read_text())
    trial = args.trial if args.trial is not None else pick_trial(summary, args.best)
    row = next((t for t in summary["full_fidelity_trials"] if t["trial"] == trial), None)
    if row is None:
        raise SystemExit(f"trial {trial} is not a full-fidelity trial of the committed search JSON")
    path = write_recipe(args.model, trial, trial_recipe(args.model, trial, args.version, summary), row, args.version)
    wall, cmd = rerun(args.model, trial, path, args.version)
    got = load_reference(RUNS / args.model / f"search-{args.version}-trial{trial}")
    base = summary["baseline"]
    entry = {"study": summary["study"], "trial": trial, "params": row["params"], "recipe": str(path.relative_to(ROOT)),
             "is_search_best": trial == (summary.get("best") or {}).get("trial"),
             "search": {k: row[k] for k in ("valid_loss", "test_loss", "bytes")},
             "rerun": {"valid_loss": got.loss, "test_loss": got.test_loss, "bytes": got.bytes,
                       "test_loss_change_pct": 100 * (got.test_loss / base["test_loss"] - 1),
                       "fp32_ratio": base["bytes"] / got.bytes},
             "same_bytes": got.bytes == row["bytes"], "valid_diff": got.loss - row["valid_loss"],
             "test_diff": got.test_loss - row["test_loss"],
             "meets_1_40_within_2pct_test": got.bytes <= base["bytes"] / 40 and got.test_loss <= 1.02 * base["test_loss"],
             "wall_s": round(wall, 1), "load_average_after": [round(x, 2) for x in os.getloadavg()],
             "command": " ".join(["rnnslim", *cmd[3:]])}
    out = RESULTS / f"search_reproduce_{args.model}.json"
    old = json.loads(out.read_text()) if out.exists() else {}
    runs = {f'{e.get("study")}/{e["trial"]}': e for e in old.get("reruns", [])}
    runs[f'{summary["study"]}/{trial}'] = entry
    write_json_atomic(out, {"benchmark": "search_reproduce", "model": args.model, "baseline": base,
                            "reruns": list(runs.values()), "provenance": provenance()})
    print(json.dumps(entry, indent=1))


if __name__ == "__main__":
    main()
