"""One-shot validation loss of low-rank factorizations of a reference model (no fine-tuning).

    python benchmarks/lowrank_oneshot.py [--model charlstm-512x2] [--redo]

Rows: the compression stages of benchmarks/recipes/small-lowrank-1p1m.yaml and
small-lstmp-1p1m.yaml (every stage but `finetune`, run through the pipeline's stage
functions, so the numbers are those of the recipes' input to fine-tuning), then a few more
points: whole-model budgets (max_params) with the plain and the data-aware SVD, and LSTMP by
energy after the exact layer-0 fold. Each row: parameters, artifact_bytes of the saved model,
per-site ranks and energy kept, the relative output error on 4 training batches, and the loss
on the WHOLE validation split as one stream (batch 1, state carried: task.evaluate), in nats
and its change against the input model. Noise band of a loss change on a split:
benchmarks/results/noise_band.json (table_parts.NOISE_BAND, BENCHMARKING.md's definition). One
thread; resumable (rows already in the results file are kept unless --redo). Writes benchmarks/results/lowrank_oneshot_<model>.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA, MODELS, RESULTS, ROOT, provenance  # noqa: E402

from rnnslim.io.format import artifact_bytes, load_model, save_model  # noqa: E402
from rnnslim.lowrank import params  # noqa: E402
from rnnslim.pipeline.recipe import load_recipe  # noqa: E402
from rnnslim.pipeline.stage import StageContext, get_stage, parse_stage  # noqa: E402
from rnnslim.tasks import task_for_model  # noqa: E402
from rnnslim.utils.atomic import write_json_atomic  # noqa: E402

RECIPES = ("small-lowrank-1p1m", "small-lstmp-1p1m")
FOLD = {"kind": "lowrank", "targets": ["input"], "layers": [0], "rank": 65}
EXTRA = {  # name: stages (dicts as in a recipe)
    "lowrank-budget-1p1m-data-aware": [{"kind": "lowrank", "targets": ["input", "recurrent"], "max_params": 1_100_000,
                                        "calibration_batches": 8}],
    "lowrank-budget-1p6m": [{"kind": "lowrank", "targets": ["input", "recurrent"], "max_params": 1_600_000}],
    "lowrank-budget-2p2m": [{"kind": "lowrank", "targets": ["input", "recurrent"], "max_params": 2_200_000}],
    "fold-input0-rank65": [FOLD],
    "fold+lstmp-energy0.6": [FOLD, {"kind": "to_lstmp", "energy": 0.6}],
    "fold+lstmp-energy0.8": [FOLD, {"kind": "to_lstmp", "energy": 0.8}],
    "fold+lstmp-energy0.9": [FOLD, {"kind": "to_lstmp", "energy": 0.9}],
}


def _stages(name: str) -> list:
    if name in EXTRA:
        return [parse_stage(s) for s in EXTRA[name]]
    return [s for s in load_recipe(ROOT / "benchmarks" / "recipes" / f"{name}.yaml").stages if s.kind != "finetune"]


def run_row(base, task, name: str, base_loss: float) -> dict:
    model = copy.deepcopy(base)
    records = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for i, cfg in enumerate(_stages(name)):
            ctx = StageContext(task=task, work_dir=Path(tmp) / str(i), progress=False, seed=0)
            model = get_stage(cfg.kind)[1](model, cfg, ctx)
            records.append({"stage": cfg.model_dump(mode="json"), "record": ctx.record})
        cut_s = time.perf_counter() - t0
        save_model(model, Path(tmp) / "model")
        nbytes = artifact_bytes(Path(tmp) / "model")
    loss = task.evaluate(model, "valid")["loss_nats"]
    return {"params": params(model), "artifact_bytes": nbytes, "valid_loss_nats": round(loss, 5),
            "delta_nats": round(loss - base_loss, 5), "delta_pct": round(100 * (loss - base_loss) / base_loss, 2),
            "layers": [ly.model_dump(mode="json") for ly in model.spec.layers], "embed_size": model.spec.embed_size,
            "cut_wall_s": round(cut_s, 2), "stages": records}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="charlstm-512x2")
    ap.add_argument("--redo", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = RESULTS / f"lowrank_oneshot_{args.model}.json"
    data = json.loads(out.read_text()) if out.exists() and not args.redo else {}
    base = load_model(MODELS / f"{args.model}.json")
    task = task_for_model(base, DATA)
    if "input" not in data:
        with tempfile.TemporaryDirectory() as tmp:
            save_model(base, Path(tmp) / "m")
            nbytes = artifact_bytes(Path(tmp) / "m")
        data["input"] = {"model": args.model, "params": params(base), "artifact_bytes": nbytes,
                         "valid_loss_nats": round(task.evaluate(base, "valid")["loss_nats"], 5)}
    rows = data.setdefault("rows", {})
    for name in (*RECIPES, *EXTRA):
        if name in rows:
            continue
        rows[name] = run_row(base, task, name, data["input"]["valid_loss_nats"])
        r = rows[name]
        print(f"{name:34s} {r['params']:>9,d} params  valid {r['valid_loss_nats']:.4f} ({r['delta_pct']:+.2f} %)",
              flush=True)
        data["evaluation"] = "whole validation split as one stream, batch 1, state carried (task.evaluate)"
        data["compute"] = "one CPU thread; no training (one-shot); data-aware rows use 8 training batches of 16 x 64"
        data["provenance"] = provenance()
        write_json_atomic(out, data)


if __name__ == "__main__":
    main()
