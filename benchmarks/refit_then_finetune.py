"""Does prune_units' least-squares re-fit help when a fine-tune follows? One shot it does (BENCHMARKS
"Recovery"); this measures the model after the fine-tune, with and without the re-fit.

    python benchmarks/refit_then_finetune.py --model charlstm-512x2 --hidden 384 --steps 200
    python benchmarks/refit_then_finetune.py --model charlstm-512x2 --hidden 384 --steps 2000 --refit false

Each run is the recipe

    prune_units  ratio 1 - hidden / H, round_to 16, criterion magnitude, reduce l2, refit true | false
    finetune     max_steps --steps, lr 1e-3 (FinetuneFields defaults: AdamW, batch 32 x 64, clip 1.0,
                 5 % warm-up then cosine, whole-validation evaluations every steps // 5, best kept);
                 --training distill: distill_alpha 1, distill_temperature 1, dropout 0

through rnnslim.pipeline.run_pipeline (one thread; run directories in benchmarks/runs/refit_then_finetune/,
so an interrupted run resumes), and the pipeline's own valid / test loss after each stage (whole splits,
batch 1) are recorded. Writes benchmarks/results/refit_then_finetune.json (merged, one key per model,
units, steps and training; one row per refit value).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA, MODELS, RESULTS, RUNS, prune_units_recipe, update_results  # noqa: E402

from rnnslim.io.format import load_model  # noqa: E402
from rnnslim.pipeline.recipe import load_recipe  # noqa: E402
from rnnslim.pipeline.runner import run_pipeline  # noqa: E402
from rnnslim.tasks import task_for_model  # noqa: E402

OUT = RESULTS / "refit_then_finetune.json"


def run(model_name: str, hidden: int, steps: int, training: str, refit: bool) -> dict:
    model = load_model(MODELS / f"{model_name}.json")
    full = model.rnn.layers[0].hidden_size
    work = RUNS / "refit_then_finetune" / model_name
    work.mkdir(parents=True, exist_ok=True)
    name = f"units{hidden}-{steps}-{training}-refit-{str(refit).lower()}"
    recipe = work / f"{name}.yaml"
    recipe.write_text(prune_units_recipe(f"refit-{str(refit).lower()}-units{hidden}-{steps}-{training}",
                                         1 - hidden / full, "l2", str(refit).lower(), steps, training == "distill"))
    t0 = time.perf_counter()
    run_pipeline(model, load_recipe(recipe), task_for_model(model, DATA), work / name, resume=True, progress=False)
    report = json.loads((work / name / "report.json").read_text())
    losses = {row["label"]: {split: m["loss_nats"] for split, m in row["measurements"]["metrics"].items()}
              for row in report["rows"]}
    stages = {row["label"]: row.get("timings", {}).get("run_s") for row in report["rows"]}
    return {"refit": refit, "losses": losses, "stage_seconds": stages, "wall_s": round(time.perf_counter() - t0, 1),
            "recipe": recipe.read_text()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="charlstm-512x2")
    ap.add_argument("--hidden", type=int, default=384)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--training", choices=("labels", "distill"), default="labels")
    ap.add_argument("--refit", nargs="+", choices=("true", "false"), default=["true", "false"])
    args = ap.parse_args()
    torch.set_num_threads(1)
    key = f"{args.model} units {args.hidden} steps {args.steps} {args.training}"
    for refit in args.refit:
        row = run(args.model, args.hidden, args.steps, args.training, refit == "true")
        print(f"{key} refit {refit}: " + ", ".join(f"{label} valid {v['valid']:.4f} test {v['test']:.4f}"
                                                    for label, v in row["losses"].items()), flush=True)
        def merged(old: dict | None, row: dict = row) -> dict:  # this refit's row replaces the recorded one
            rows = [r for r in (old or {}).get("rows", []) if r["refit"] != row["refit"]] + [row]
            return {"model": args.model, "hidden": args.hidden, "steps": args.steps, "training": args.training,
                    "threads": 1, "rows": sorted(rows, key=lambda r: -r["refit"])}

        update_results(OUT, key, merged)


if __name__ == "__main__":
    main()
