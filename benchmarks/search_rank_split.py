"""Which split should the search rank on? (issue 23, section 2: "the split that ranks must
predict the split that reports").

    python benchmarks/search_rank_split.py                     # both reference models, ~15 CPU-min
    python benchmarks/search_rank_split.py --models charlstm-512x2 --tokens 4000   # quicker

For each reference model, 12 cheap one-shot recipes (no fine-tune; the families the search
samples: low-bit RTN / GPTQ, OBS sparsity with entropy-coded low bits, structured widths,
low rank, mixed precision) are applied with the pipeline's own stages, then the loss change
vs the input model is measured on three slices of the same length:

    valid     the head of the validation split (what the search ranks on today)
    test      the head of the test split (what it reports)
    holdout   the last tokens of the training split (the candidate "rank_on: holdout" slice;
              the reference models were trained on it, so it measures memorised text)

and the Spearman rank correlation of valid vs test and holdout vs test over the 12 recipes.
Also: the Spearman correlation over the committed full-fidelity trials of
search_charlstm-512x2.json (valid vs test change, with fine-tune). 1 thread.
Writes benchmarks/results/search_rank_split.json (atomically).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA, MODELS, RESULTS, provenance

OUT = RESULTS / "search_rank_split.json"
IO8 = {"kind": "quantize_weights", "bits": 8, "targets": ["embedding", "decoder"]}


def _q(kind: str, bits: int, **extra) -> list[dict]:
    return [{"kind": kind, "bits": bits, "targets": ["rnn", "input_proj"], **extra}, {**IO8, "kind": kind}
            if kind == "quantize_weights" else {**IO8, "kind": kind, "bits": 8, **extra}]


def _obs(sparsity: float, **extra) -> dict:
    return {"kind": "prune_obs", "sparsity": sparsity, "calibration_batches": 4, "targets": ["input", "recurrent"],
            **extra}


RECIPES = {
    "int4": _q("quantize_weights", 4),
    "int3-mse": _q("quantize_weights", 3, clip="mse"),
    "gptq-int3": _q("quantize_gptq", 3, calibration_batches=4),
    "gptq-int2": _q("quantize_gptq", 2, calibration_batches=4),
    "obs50-int4-lzma": [_obs(0.5)] + _q("quantize_weights", 4, entropy_coding=True),
    "obs70-int3-lzma": [_obs(0.7)] + _q("quantize_weights", 3, clip="mse", entropy_coding=True),
    "obs85-int3-lzma": [_obs(0.85)] + _q("quantize_weights", 3, clip="mse", entropy_coding=True),
    "strips75-int4-lzma": [_obs(0.75, pattern="strips")] + _q("quantize_weights", 4, entropy_coding=True),
    "units384-int4": [{"kind": "prune_units", "per_layer": {0: 0.25, 1: 0.25}, "refit": False, "reduce": "l1"}]
                     + _q("quantize_weights", 4),
    "units256-int8": [{"kind": "prune_units", "per_layer": {0: 0.5, 1: 0.5}, "refit": False, "reduce": "l1"}]
                     + _q("quantize_weights", 8),
    "lowrank0.9": [{"kind": "lowrank", "energy": 0.9}],
    "mixed0.15": [{"kind": "mixed_precision", "budget_ratio": 0.15, "calib_batches": 2}],
}


def apply(model, task, stages: list[dict], work: Path):
    import torch

    from rnnslim.pipeline.stage import StageContext, get_stage

    current = copy.deepcopy(model).eval()
    for i, raw in enumerate(stages):
        cls, fn = get_stage(raw["kind"])
        ctx = StageContext(task=task, work_dir=work / f"s{i}", seed=i, progress=False)
        ctx.work_dir.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(i)
        current = fn(current, cls.model_validate(raw), ctx)
    return current.eval()


def slices(task, tokens: int) -> dict:
    _, b = task.bounds["train"]
    return {"valid": task.split("valid")[:tokens], "test": task.split("test")[:tokens],
            "holdout": task.ids[b - tokens:b]}


def losses(model, sl: dict) -> dict:
    from rnnslim.tasks.charlm import stream_nll

    return {k: float(stream_nll(model, d)["loss"]) for k, d in sl.items()}


def spearman(a: list[float], b: list[float]) -> float | None:
    from scipy.stats import spearmanr

    return None if len(a) < 3 else round(float(spearmanr(a, b).statistic), 4)


def one_model(name: str, tokens: int, only: list[str] | None) -> dict:
    import torch

    from rnnslim.io.format import artifact_bytes, load_model, save_model
    from rnnslim.tasks import task_for_model

    model = load_model(MODELS / f"{name}.json")
    task = task_for_model(model, data=str(DATA))
    sl = slices(task, tokens)
    base = losses(model, sl)
    rows = []
    with tempfile.TemporaryDirectory(prefix="rank-split-") as tmp:
        base_bytes = artifact_bytes(save_model(model, Path(tmp) / "base"))
        for rname, stages in RECIPES.items():
            if only and rname not in only:
                continue
            t0 = time.perf_counter()
            try:
                out = apply(model, task, stages, Path(tmp) / rname)
            except Exception as e:  # noqa: BLE001 - a family this model cannot take is recorded, not fatal
                rows.append({"recipe": rname, "error": f"{type(e).__name__}: {e}"[:300]})
                print(f"{name} {rname}: FAILED {e}", file=sys.stderr, flush=True)
                continue
            nbytes = artifact_bytes(save_model(out, Path(tmp) / rname / "model"))
            with torch.no_grad():
                got = losses(out, sl)
            row = {"recipe": rname, "stages": stages, "bytes": nbytes, "fp32_ratio": round(base_bytes / nbytes, 2),
                   **{f"{k}_change_pct": round(100 * (got[k] / base[k] - 1), 3) for k in got},
                   "wall_s": round(time.perf_counter() - t0, 1)}
            rows.append(row)
            print(f"{name} {rname}: " + ", ".join(f"{k} {row[f'{k}_change_pct']:+.2f} %" for k in got)
                  + f", {nbytes:,} B [{row['wall_s']} s]", file=sys.stderr, flush=True)
    return {"model": name, "tokens_per_slice": tokens, "baseline_loss": base, "baseline_bytes": base_bytes,
            "trials": rows, **correlations(rows)}


NEAR_PCT = 10.0  # "near the budget": trials whose test change is at most this (the ones a +2 % cap separates)


def correlations(rows: list[dict]) -> dict:
    """Spearman of valid vs test and holdout vs test, over all trials and over those near the budget."""
    out = {}
    for label, subset in (("", [r for r in rows if "error" not in r]),
                          ("_near", [r for r in rows if "error" not in r and r["test_change_pct"] <= NEAR_PCT])):
        col = {k: [r[f"{k}_change_pct"] for r in subset] for k in ("valid", "test", "holdout")}
        out[f"spearman_valid_test{label}"] = spearman(col["valid"], col["test"])
        out[f"spearman_holdout_test{label}"] = spearman(col["holdout"], col["test"])
    out["trials_near"] = sum(1 for r in rows if "error" not in r and r["test_change_pct"] <= NEAR_PCT)
    return out


def committed_trials() -> dict:
    """Valid vs test change of the committed full-fidelity trials of the charlstm-512x2 search."""
    d = json.loads((RESULTS / "search_charlstm-512x2.json").read_text())
    t = d["full_fidelity_trials"]
    v, s = [x["valid_loss_change_pct"] for x in t], [x["test_loss_change_pct"] for x in t]
    return {"source": "benchmarks/results/search_charlstm-512x2.json full_fidelity_trials (fine-tuned)",
            "trials": len(t), "spearman_valid_test": spearman(v, s)}


def main() -> None:
    import torch

    from rnnslim.utils.atomic import write_json_atomic

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["charlstm-512x2", "chargru-512x2"])
    ap.add_argument("--tokens", type=int, default=8000, help="tokens per slice (valid / test / holdout)")
    ap.add_argument("--recipes", nargs="*", default=None, help=f"subset of {', '.join(RECIPES)}")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    prev = json.loads(args.out.read_text()) if args.out.exists() else {}
    models = dict(prev.get("models") or {})
    for name in args.models:
        models[name] = one_model(name, args.tokens, args.recipes)
        write_json_atomic(args.out, {**prev, "models": models, "committed_search": committed_trials(),
                                     "provenance": provenance()})
    result = {"models": models, "committed_search": committed_trials(), "threads": 1,
              "wall_s": round(time.perf_counter() - t0, 1), "provenance": provenance()}
    write_json_atomic(args.out, result)
    print(json.dumps({k: {"valid~test": v["spearman_valid_test"], "holdout~test": v["spearman_holdout_test"],
                          "near": [v["spearman_valid_test_near"], v["spearman_holdout_test_near"]]}
                      for k, v in models.items()}))


if __name__ == "__main__":
    main()
