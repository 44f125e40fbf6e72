"""Run compression recipes on a reference model, then time every result in one process.

    python benchmarks/run_recipes.py run     --model charlstm-512x2 --recipes benchmarks/recipes/prune-*.yaml --jobs 2
    python benchmarks/run_recipes.py measure --model charlstm-512x2 --recipes ... --out benchmarks/results/prune_charlstm-512x2.json
    python benchmarks/run_recipes.py measure ... --reference charlstm-256x2   # plus a dense smaller model's row

`run` executes each recipe with rnnslim's pipeline (resumable, in benchmarks/runs/MODEL/NAME)
in parallel worker processes (one thread each). `measure` loads every final model and, in
one process, measures the uncompressed model with all baselines (torch default, oneDNN off,
ONNX Runtime fp32 / dynamic int8) and then each compressed model's streaming latency and
throughput, so every ratio compares numbers taken in the same run (BENCHMARKING.md).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA, MODELS, RUNS, update_results  # noqa: E402


def run_one(model_name: str, recipe: Path, after: str | None = None) -> int:
    import torch

    from rnnslim.io.format import load_model
    from rnnslim.pipeline.recipe import load_recipe
    from rnnslim.pipeline.runner import run_pipeline
    from rnnslim.tasks import task_for_model

    torch.set_num_threads(1)
    # --after NAME continues from the final model of an earlier recipe's run (a chained recipe)
    model = load_model(RUNS / model_name / after / "model" if after else MODELS / f"{model_name}.json")
    task = task_for_model(model, DATA)
    rec = load_recipe(recipe)
    out = RUNS / model_name / rec.name
    out.mkdir(parents=True, exist_ok=True)
    (out.parent / f"{rec.name}.chain.json").write_text(json.dumps({"after": after}))
    run_pipeline(model, rec, task, out, resume=True, progress=False)
    return 0


def cmd_run(args) -> None:
    def launch(recipe: Path) -> tuple[Path, int]:
        log = RUNS / args.model / f"{recipe.stem}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, __file__, "one", "--model", args.model, "--recipes", str(recipe)]
        with open(log, "a") as f:
            rc = subprocess.call(cmd + (["--after", args.after] if args.after else []), stdout=f,
                                 stderr=subprocess.STDOUT)
        print(f"{recipe.name}: exit {rc} (log {log})", flush=True)
        return recipe, rc

    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(launch, [Path(r) for r in args.recipes]))
    if any(rc for _, rc in results):
        sys.exit(1)


def _compute(report: dict | None) -> dict | None:
    """What each stage of a pipeline run cost: wall seconds, training steps, device, threads."""
    if not report:
        return None
    stages = []
    for r in report["rows"][1:]:
        rec = r.get("record") or {}
        ft = rec.get("finetune") if isinstance(rec.get("finetune"), dict) else {}
        stages.append({"stage": r["kind"], "run_s": round((r.get("timings") or {}).get("run_s", 0.0), 1),
                       "train_steps": rec.get("steps", ft.get("steps", 0)), "kept_input": rec.get("kept_input"),
                       "input_valid": rec.get("input_valid"), "best_valid": rec.get("best_valid")})
    return {"device": report.get("device", "cpu"), "threads": 1, "wall_s": round(report.get("wall_s") or 0.0, 1),
            "stages": stages}


def _model_row(model, task, artifact: Path, threads: tuple[int, ...]) -> dict:
    """Size, test loss, streaming latency and throughput of one model (a row of the table)."""
    from rnnslim.io.format import artifact_bytes
    from rnnslim.measure import count_parameters, macs_per_step, streaming_latency, throughput

    params, nonzero, _aux = count_parameters(model)
    mac = macs_per_step(model)
    return {"params": params, "nonzero_params": nonzero, "artifact_bytes": artifact_bytes(artifact),
            "macs_per_step": {"dense": mac.dense, "nonzero": mac.nonzero},
            "test_loss_nats": task.evaluate(model, "test")["loss_nats"],
            "latency": {str(t): streaming_latency(model, threads=t) for t in threads},
            "throughput": {str(t): throughput(model, threads=t) for t in threads}}


def cmd_measure(args) -> None:

    from rnnslim.io.format import load_model
    from rnnslim.measure import measure
    from rnnslim.tasks import task_for_model

    dense = load_model(MODELS / f"{args.model}.json")
    task = task_for_model(dense, DATA)
    threads = tuple(int(t) for t in args.threads.split(","))
    print("measuring the uncompressed model and the baselines", flush=True)
    base = measure(dense, task=task, threads=threads, quick=False, artifact_path=MODELS / f"{args.model}.json")
    base_d = base.to_dict()
    rows = []
    for recipe in args.recipes:
        from rnnslim.pipeline.recipe import load_recipe

        rec = load_recipe(recipe)
        out = RUNS / args.model / rec.name
        done = sorted(p.parent for p in (out / "stages").glob("*/stage.json") if not p.parent.name.startswith("00"))
        final = out / "model" if (out / "model" / "model.json").exists() else (done[-1] / "model" if done else None)
        if final is None:
            print(f"skip {rec.name}: not run yet", flush=True)
            continue
        stages = [s.kind for s in rec.stages]
        partial = final.parent.name != rec.name  # the run was stopped: report the last finished stage, say so
        if partial:
            stages = stages[: len(done)]
            print(f"{rec.name}: incomplete run, using {final.parent.name}", flush=True)
        model = load_model(final)
        report = json.loads((out / "report.json").read_text()) if (out / "report.json").exists() else None
        row = {"recipe": rec.name, "recipe_file": str(Path(recipe)), "stages": stages, "partial": partial,
               **_model_row(model, task, final, threads), "pipeline_report": report, "compute": _compute(report)}
        print(f"{rec.name}: test {row['test_loss_nats']:.4f}, {row['artifact_bytes']:,} B, "
              f"{row['latency'][str(threads[0])]['median_ms']:.3f} ms", flush=True)
        chain = RUNS / args.model / f"{rec.name}.chain.json"
        after = json.loads(chain.read_text()).get("after") if chain.exists() else None
        if after:  # a chained recipe: its input was the final model of `after`
            prev = load_recipe(Path(recipe).with_name(f"{after}.yaml"))
            row["after"] = after
            row["stages"] = [s.kind for s in prev.stages] + row["stages"]
        rows.append(row)
    for name in args.reference or []:  # dense models trained elsewhere (e.g. a smaller size), measured alongside
        ref = load_model(MODELS / f"{name}.json")
        row = {"recipe": f"dense {name}", "reference": name, "stages": [], "partial": False,
               **_model_row(ref, task_for_model(ref, DATA), MODELS / f"{name}.json", threads),
               "compute": {"note": "trained from scratch elsewhere (../shared/models); measured here"}}
        print(f"dense {name}: test {row['test_loss_nats']:.4f}", flush=True)
        rows.append(row)
    update_results(Path(args.out), "baseline", base_d)
    update_results(Path(args.out), "rows", rows)
    print(f"wrote {args.out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("phase", choices=["run", "one", "measure"])
    ap.add_argument("--model", required=True, help="reference model name in ../shared/models")
    ap.add_argument("--recipes", nargs="+", required=True)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--out", default=None)
    ap.add_argument("--after", default=None, help="start from the final model of this earlier recipe's run")
    ap.add_argument("--reference", nargs="*", default=None,
                    help="measure: also rows for these dense models in ../shared/models (e.g. charlstm-256x2)")
    args = ap.parse_args()
    if args.phase == "one":
        sys.exit(run_one(args.model, Path(args.recipes[0]), args.after))
    if args.phase == "run":
        cmd_run(args)
    else:
        if not args.out:
            ap.error("measure needs --out")
        cmd_measure(args)


if __name__ == "__main__":
    main()
