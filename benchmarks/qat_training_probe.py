"""How the fine-tune is trained decides whether QAT recovers 2-bit rounding (issue 23).

    python benchmarks/qat_training_probe.py                  # every variant, one after the other
    python benchmarks/qat_training_probe.py --jobs 2         # two at a time (one thread each)

Base: the v3 search's best recipe on charlstm-512x2 (benchmarks/recipes/search-v3-charlstm-512x2-
trial37.yaml: 512/480 units, input fold, GPTQ int2 rnn + LZMA, GPTQ int4 embedding + decoder, no
fine-tune). Each variant inserts one 500-step `qat` stage right after the rnn's GPTQ stage (it
continues on GPTQ's frozen grid, so its step 0 is the GPTQ model) and differs only in how it trains:
the task's labels or pure distillation from the fp32 input model, the model's dropout (0.5) or none,
lr 1e-3 or 1e-4. The reference models were trained with dropout 0.5 and kept at their best
validation checkpoint. Runs go to benchmarks/runs/qat_probe/<variant> (`rnnslim compress` in a
fresh process, one thread; a killed run resumes its finished stages); the results (the QAT stage's
validation-slice curve, whole-split valid / test and bytes before and after) to
benchmarks/results/qat_training_probe_charlstm-512x2.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA, MODELS, RESULTS, ROOT, RUNS, provenance  # noqa: E402

MODEL = "charlstm-512x2"
BASE = ROOT / "benchmarks" / "recipes" / "search-v3-charlstm-512x2-trial37.yaml"
OUT = RESULTS / f"qat_training_probe_{MODEL}.json"
QAT = {"kind": "qat", "steps": 500, "bits": 2, "targets": ["rnn", "input_proj"], "entropy_coding": True,
       "batch_size": 32, "seq_len": 64, "eval_every": 100, "eval_max_steps": 5000}
VARIANTS = {  # name: (what it trains on, the qat stage's own settings, the recipe's name)
    "labels-dropout0.5-lr1e-3": ("labels, the model's dropout 0.5", {"lr": 0.001}, "probe-qat-lr0.001"),
    "labels-dropout0.5-lr1e-4": ("labels, the model's dropout 0.5", {"lr": 0.0001}, "probe-qat-lr0.0001"),
    "distill-dropout0-lr1e-4": ("distillation only, dropout 0",
                                {"lr": 0.0001, "distill_alpha": 1.0, "distill_temperature": 1.0, "dropout": 0.0},
                                "probe-qat-kd0-lr1e-4"),
    "distill-dropout0-lr1e-3": ("distillation only, dropout 0",
                                {"lr": 0.001, "distill_alpha": 1.0, "distill_temperature": 1.0, "dropout": 0.0},
                                "probe-qat-kd0-lr1e-3"),
}  # (the recipe names are those of the first runs, made by hand before this script: their run dirs resume)


def recipe_of(name: str) -> dict:
    import yaml

    base = yaml.safe_load(BASE.read_text())
    stages = base["stages"]
    at = next(i for i, s in enumerate(stages) if s["kind"] == "quantize_gptq" and "rnn" in s["targets"]) + 1
    return {**base, "name": VARIANTS[name][2], "measure": {"latency": False, "threads": 1},
            "stages": stages[:at] + [{**QAT, **VARIANTS[name][1]}] + stages[at:]}


def run(name: str) -> Path:
    import yaml

    out = RUNS / "qat_probe" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    recipe = out.parent / f"{name}.yaml"
    recipe.write_text(yaml.safe_dump(recipe_of(name), sort_keys=False))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-c", "from rnnslim.cli import app; app()", "compress", str(MODELS / f"{MODEL}.json"),
           "--recipe", str(recipe), "--data", str(DATA), "--out", str(out)]
    subprocess.run(cmd, check=True, env=env)
    return out


def summarize(name: str, out: Path) -> dict:
    rows = json.loads((out / "report.json").read_text())["rows"]  # 0 input, 1-3 up to the rnn GPTQ, 4 qat, 5 io
    curve = json.loads(next((out / "stages").glob("*-qat/work/qat/history.json")).read_text())["history"]
    return {"trains_on": VARIANTS[name][0], "qat_settings": VARIANTS[name][1],
            "valid_slice_curve": [[e["step"], round(e["loss_nats"], 4)] for e in curve if "loss_nats" in e],
            "after_qat": _losses(rows[4], rows[0]), "final": _losses(rows[-1], rows[0]),
            "run_dir": str(out.relative_to(ROOT))}


def _losses(row: dict, ref: dict) -> dict:
    m, r = row["measurements"], ref["measurements"]
    out = {"stage": row.get("dir", "input"), "bytes": m["artifact_bytes"]}
    for split in ("valid", "test"):
        v, v0 = m["metrics"][split]["loss_nats"], r["metrics"][split]["loss_nats"]
        out.update({split: round(v, 4), f"{split}_change_pct": round(100 * (v / v0 - 1), 2)})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    args = ap.parse_args()
    with ThreadPoolExecutor(args.jobs) as pool:
        outs = dict(zip(args.variants, pool.map(run, args.variants)))
    rows = json.loads((outs[args.variants[0]] / "report.json").read_text())["rows"]
    no_qat = {**_losses(rows[3], rows[0]), "note": "after the rnn's GPTQ stage; the base recipe's final "
              "model (io int4 too) is the v3 trial 37: +4.35 % valid, +2.75 % test, 832,881 bytes"}
    res = {"model": MODEL, "base_recipe": str(BASE.relative_to(ROOT)), "qat_stage": QAT,
           "input": _losses(rows[0], rows[0]), "no_qat": no_qat,
           "variants": {n: summarize(n, o) for n, o in outs.items()},
           "compute": "one thread per run (AMD EPYC); --jobs runs at a time", "provenance": provenance()}
    tmp = OUT.with_suffix(".tmp")
    tmp.write_text(json.dumps(res, indent=1))
    tmp.replace(OUT)
    print(json.dumps({n: v["final"] for n, v in res["variants"].items()}, indent=1))


if __name__ == "__main__":
    main()
