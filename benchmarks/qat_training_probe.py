"""How the fine-tune is trained decides whether QAT recovers 2-bit rounding (issue 23).

    python benchmarks/qat_training_probe.py                  # every variant, one after the other
    python benchmarks/qat_training_probe.py --jobs 2         # two at a time (one thread each)
    python benchmarks/qat_training_probe.py --base v4-trial22   # QAT on a sparse recipe (below)

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

`--base v4-trial22`: the v4 search's best (benchmarks/recipes/search-v4-charlstm-512x2-trial22.yaml:
480/512 units, OBS 80 % sparsity, 500 distillation fine-tune steps BEFORE GPTQ int4, +2.64 % valid /
+0.16 % test at 831,549 bytes). Its variants: the 500 steps moved after quantization (the fine-tune
stage dropped, a `qat` stage with the same training, int4 on GPTQ's frozen grid, pruning masks
held, runs last), 500 such QAT steps added after the recipe (the fine-tune kept), or the same
1,000 training steps all as the fine-tune before GPTQ (no QAT). Results: benchmarks/results/qat_training_probe_charlstm-512x2-v4-trial22.json.
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
RECIPES = ROOT / "benchmarks" / "recipes"
BASES = {"v3-trial37": RECIPES / "search-v3-charlstm-512x2-trial37.yaml",
         "v4-trial22": RECIPES / "search-v4-charlstm-512x2-trial22.yaml"}
OUTS = {"v3-trial37": RESULTS / f"qat_training_probe_{MODEL}.json",
        "v4-trial22": RESULTS / f"qat_training_probe_{MODEL}-v4-trial22.json"}
DISTILL = {"lr": 0.001, "distill_alpha": 1.0, "distill_temperature": 1.0, "dropout": 0.0}
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
SPARSE_VARIANTS = {  # base v4-trial22: its 500 fine-tune steps run as QAT after quantization instead, or
    # 500 QAT steps are added after it (the fine-tune kept)
    "sparse-qat-instead-of-finetune": ("distillation only, dropout 0; QAT last instead of the fine-tune",
                                       {**DISTILL, "bits": 4}, "probe-sparse-qat500-kd0-lr1e-3"),
    "sparse-finetune-then-qat": ("distillation only, dropout 0; the fine-tune kept, QAT last",
                                 {**DISTILL, "bits": 4}, "probe-sparse-ft500-qat500-kd0-lr1e-3"),
    # the same 1,000 training steps, all as the float fine-tune before GPTQ (no qat stage)
    "sparse-finetune1000": ("distillation only, dropout 0; a 1,000-step fine-tune, no QAT", {},
                            "probe-sparse-ft1000-kd0-lr1e-3"),
}


def recipe_of(name: str, base_name: str = "v3-trial37") -> dict:
    """v3-trial37: the qat stage right after the rnn's GPTQ stage. v4-trial22: the fine-tune
    stage dropped and the qat stage last (after the embedding + decoder's GPTQ, as the search places it)."""
    import yaml

    base = yaml.safe_load(BASES[base_name].read_text())
    stages = base["stages"]
    measure = {"latency": False, "threads": 1}  # (the v4-trial22 variants differ only in the fine-tune kept)
    if base_name == "v4-trial22":
        if name == "sparse-finetune1000":
            longer = [{**s, "max_steps": 1000} if s["kind"] == "finetune" else s for s in stages]
            return {**base, "name": SPARSE_VARIANTS[name][2], "measure": measure, "stages": longer}
        kept = [s for s in stages if s["kind"] != "finetune" or name == "sparse-finetune-then-qat"]
        return {**base, "name": SPARSE_VARIANTS[name][2], "measure": measure,
                "stages": kept + [{**QAT, **SPARSE_VARIANTS[name][1]}]}
    at = next(i for i, s in enumerate(stages) if s["kind"] == "quantize_gptq" and "rnn" in s["targets"]) + 1
    return {**base, "name": VARIANTS[name][2], "measure": measure,
            "stages": stages[:at] + [{**QAT, **VARIANTS[name][1]}] + stages[at:]}


def run(name: str, base_name: str = "v3-trial37") -> Path:
    import yaml

    out = RUNS / "qat_probe" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    recipe = out.parent / f"{name}.yaml"
    recipe.write_text(yaml.safe_dump(recipe_of(name, base_name), sort_keys=False))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-c", "from rnnslim.cli import app; app()", "compress", str(MODELS / f"{MODEL}.json"),
           "--recipe", str(recipe), "--data", str(DATA), "--out", str(out)]
    subprocess.run(cmd, check=True, env=env)
    return out


def summarize(name: str, out: Path, variants: dict) -> dict:
    rows = json.loads((out / "report.json").read_text())["rows"]  # 0 the input, then one row per stage
    # the curve of the last training stage: the qat stage's, or the fine-tune's when there is none
    hist = sorted((out / "stages").glob("*-qat/work/qat/history.json")) or sorted(
        (out / "stages").glob("*-finetune/work/*/history.json"))
    curve = json.loads(hist[-1].read_text())["history"]
    qat_row = next((r for r in rows if str(r.get("dir", "")).endswith("-qat")), None)
    return {"trains_on": variants[name][0], "qat_settings": variants[name][1],
            "valid_slice_curve": [[e["step"], round(e["loss_nats"], 4)] for e in curve if "loss_nats" in e],
            "after_qat": _losses(qat_row, rows[0]) if qat_row else None, "final": _losses(rows[-1], rows[0]),
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
    ap.add_argument("--base", default="v3-trial37", choices=list(BASES))
    ap.add_argument("--variants", nargs="*", default=None, choices=list(VARIANTS) + list(SPARSE_VARIANTS))
    args = ap.parse_args()
    variants = SPARSE_VARIANTS if args.base == "v4-trial22" else VARIANTS
    names = args.variants or list(variants)
    if unknown := [n for n in names if n not in variants]:
        ap.error(f"variants {unknown} are not variants of --base {args.base}: {list(variants)}")
    with ThreadPoolExecutor(args.jobs) as pool:
        outs = dict(zip(names, pool.map(lambda n: run(n, args.base), names)))
    rows = json.loads((outs[names[0]] / "report.json").read_text())["rows"]
    if args.base == "v4-trial22":
        no_qat = {"stage": "the base recipe as the search ran it (trial 22)", "bytes": 831549, "valid_change_pct": 2.64,
                  "test_change_pct": 0.16, "source": "benchmarks/results/search_charlstm-512x2-v4.json trial 22"}
    else:
        no_qat = {**_losses(rows[3], rows[0]), "note": "after the rnn's GPTQ stage; the base recipe's final "
                  "model (io int4 too) is the v3 trial 37: +4.35 % valid, +2.75 % test, 832,881 bytes"}
    qat = {**QAT, **({"bits": 4} if args.base == "v4-trial22" else {})}
    res = {"model": MODEL, "base_recipe": str(BASES[args.base].relative_to(ROOT)), "qat_stage": qat,
           "input": _losses(rows[0], rows[0]), "no_qat": no_qat,
           "variants": {n: summarize(n, o, variants) for n, o in outs.items()},
           "compute": "one thread per run (AMD EPYC); --jobs runs at a time", "provenance": provenance()}
    out = OUTS[args.base]
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(res, indent=1))
    tmp.replace(out)
    print(json.dumps({n: v["final"] for n, v in res["variants"].items()}, indent=1))


if __name__ == "__main__":
    main()
