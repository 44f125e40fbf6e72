"""Small classification sets (issue 25): float accuracy with the checkpoint rule, int8
dynamic / static / integer, prune + fine-tune + int8 integer and early exit, with bytes.

    python benchmarks/small_classify.py                 # JapaneseVowels, BasicMotions, ItalyPowerDemand
    python benchmarks/small_classify.py --data BasicMotions --force

Per data set (aeon ships them; nothing is downloaded):
1. `rnnslim train --task classify --data NAME --hidden 64 --layers 2 --max-steps 300`
   (the user's command from the issue; best validation checkpoint, ties on accuracy broken by
   validation loss), kept in benchmarks/runs/small_classify/NAME;
2. one `rnnslim compress` per recipe below, from that model, --json;
3. a row per result: test accuracy, change vs float in points, artifact bytes, and `within`
   (true when the test accuracy is at most 1 point below float; else `missed` says by how much).
Test splits are aeon's TEST files (40 sequences for BasicMotions: one sequence = 2.5 points).
ItalyPowerDemand is the univariate set (67 training sequences of 24 steps, 1,029 test).
Results: benchmarks/results/small_classify.json, one key per data set.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, RUNS, update_results  # noqa: E402

RECIPES = {
    "int8_dynamic": [{"kind": "int8_dynamic"}],
    "int8_static": [{"kind": "int8_static", "calibration_batches": 8}],
    "int8_integer": [{"kind": "int8_integer", "calibration_batches": 8}],
    "prune0.5+finetune200+int8_integer": [{"kind": "prune_units", "ratio": 0.5, "reduce": "l1", "refit": True},
                                          {"kind": "finetune", "max_steps": 200},
                                          {"kind": "int8_integer", "calibration_batches": 8}],
    "early_exit": [{"kind": "early_exit", "max_steps": 300}],
}
TOLERANCE = 0.01  # one point


def _rnnslim(*args: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RNNSLIM_PROGRESS": "0"}
    exe = Path(sys.executable).with_name("rnnslim")
    out = subprocess.run([str(exe), *args, "--json"], check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _trained(name: str, force: bool) -> tuple[Path, dict]:
    run = RUNS / "small_classify" / name
    record = run / "training.json"
    if record.exists() and not force:
        return run / "model", json.loads(record.read_text())
    got = _rnnslim("train", "--task", "classify", "--data", name, "--hidden", "64", "--layers", "2",
                   "--max-steps", "300", "--out", str(run), "--no-resume")
    kept = {k: got[k] for k in ("steps", "best_valid", "best_step", "valid_note")}
    record.write_text(json.dumps(kept))
    return run / "model", kept


def _row(label: str, test: float, bytes_: int, float_test: float) -> dict:
    drop = float_test - test
    row = {"variant": label, "test_accuracy": round(test, 4), "change_points": round(-100 * drop, 2),
           "artifact_bytes": bytes_, "within": drop <= TOLERANCE + 1e-9}
    if not row["within"]:
        row["missed"] = f"{100 * drop:.1f} points below float"
    return row


def bench(name: str, force: bool) -> dict:
    model, training = _trained(name, force)
    rows, float_row = [], None
    for label, stages in RECIPES.items():
        recipe = RUNS / "small_classify" / f"{name}-{label}.yaml"
        recipe.write_text(json.dumps({"version": 1, "name": label, "seed": 0, "stages": stages}))
        got = _rnnslim("compress", str(model), "--recipe", str(recipe), "--out",
                       str(RUNS / "small_classify" / f"{name}-{label}"), "--no-resume")
        first, last = got["rows"][0], got["rows"][-1]
        if float_row is None:
            float_row = _row("float (input)", first["test_accuracy"], first["artifact_bytes"], first["test_accuracy"])
            rows.append(float_row)
        row = _row(label, last["test_accuracy"], last["artifact_bytes"], float_row["test_accuracy"])
        row["stages"] = [{"stage": r["stage"], "test_accuracy": r["test_accuracy"], "artifact_bytes": r["artifact_bytes"]}
                         for r in got["rows"][1:]]
        rows.append(row)
        print(name, label, row["test_accuracy"], row["artifact_bytes"], flush=True)
    return {"training": training, "command": f"rnnslim train --task classify --data {name} --hidden 64 --layers 2 "
            "--max-steps 300", "rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", nargs="*", default=["JapaneseVowels", "BasicMotions", "ItalyPowerDemand"])
    ap.add_argument("--force", action="store_true", help="retrain")
    args = ap.parse_args()
    for name in args.data:
        update_results(RESULTS / "small_classify.json", name, bench(name, args.force))


if __name__ == "__main__":
    main()
