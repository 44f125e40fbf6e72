"""Pruning to the integer kernel's column strips vs unstructured OBS at the same sparsity (issue 22).

    python benchmarks/strip_pruning_bench.py oneshot  --model charlstm-512x2 --sparsity 0.75
    python benchmarks/strip_pruning_bench.py recover  --model charlstm-512x2 --sparsity 0.75 --steps 200
    python benchmarks/strip_pruning_bench.py recover  --model chargru-512x2 --steps 1000 --training distill \
        --patterns unstructured nm1ofM            # distillation only, dropout 0 (TRAININGS)
    python benchmarks/strip_pruning_bench.py gradual  --model charlstm-512x2 --sparsity 0.75 --steps 100 \
        --patterns strips16x1-m4
    python benchmarks/strip_pruning_bench.py collect  --model charlstm-512x2

oneshot: one row per pattern, second-order (SparseGPT-style) pruning of the LSTM/GRU input and
recurrent weights and the decoder (targets input, recurrent, output; the embedding stays
dense), 32 calibration batches of 16 x 64 tokens, as benchmarks/reconstruct_bench.py obs:
- unstructured: OBS, per-block adaptive mask (the reference row);
- block16x1: 16 x 1 strips chosen once from the dense weights' saliency (the existing
  `pattern: block` with block_rows 16, block_cols 1), then OBS reconstruction;
- strips16x1 / strips16x1-m4: strips chosen inside the walk from the summed saliency of the 16
  rows of the weights as updated so far (`pattern: strips`), kept count per (16-row block,
  64-column panel) any / a multiple of 4; "-global": per-tensor sparsity from one strip
  saliency threshold over every target; strips8x1-m4: 8-row blocks (not the kernel's format,
  rnnslim.quantize.int8.strips: what the 16-row height costs);
- nm1ofM: OBS N:M with one weight kept of every M consecutive inputs of a row (1:4 at 75 %,
  1:10 at 90 %), the issue's other fine-grained candidate (N:M with packed indices);
- nmKof64: OBS N:M with K of every 64 consecutive inputs of a row kept (16:64 at 75 %): the panels
  format's own constraint (the same count per row in each 64-column panel, any columns), so the
  same kernel speed as 1:4 with a much freer mask.
recover: every one-shot model of that sparsity fine-tuned with its masks kept, the SAME budget
for every pattern (steps, lr 1e-3, batch 32 x 64, distillation 0.5 at T 2 from the dense model, as
benchmarks/recipes/recover-unstructured90.yaml; validation only before and after, on the first
16,384 validation tokens, so the returned model is the better of the two there).
gradual: AGP with OBS as the criterion, the same total fine-tuning steps: `stages` phases of
(prune to the next point of the cubic ramp with OBS in the pattern, fine-tune steps / stages).
Test loss: whole test split, batch 1, state carried. 1 thread per run. Each row is written to
benchmarks/runs/strip_pruning/<model>/<row>.json as soon as it is done (a rerun skips finished
rows), with the pruned model next to it (save_model directory, safetensors) for the kernel's
timings; collect merges the rows into benchmarks/results/strip_pruning_<model>.json with the
change vs the unstructured row of the same sparsity.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA, MODELS, RESULTS, RUNS, provenance, update_results  # noqa: E402

from rnnslim.io.format import artifact_bytes, load_model, save_model  # noqa: E402
from rnnslim.prune.masks import mark_sparse_, masks_from_model  # noqa: E402
from rnnslim.reconstruct import OBSPruning, prune_obs_  # noqa: E402
from rnnslim.tasks import task_for_model  # noqa: E402

TARGETS = ("input", "recurrent", "output")
TOKENS_PER_BATCH = 16 * 64
PATTERNS = {
    "unstructured": {},
    "block16x1": {"pattern": "block", "block_rows": 16, "block_cols": 1},
    "strips16x1": {"pattern": "strips", "strip_multiple": 1},
    "strips16x1-m4": {"pattern": "strips"},
    "strips16x1-m4-global": {"pattern": "strips", "scope": "global"},
    "strips8x1-m4": {"pattern": "strips", "strip_rows": 8},  # not the kernel's format: what 16 rows cost
    "nm1ofM": {"pattern": "nm", "n": 1},  # M = 1 / (1 - sparsity): 1:4 at 75 %, 1:10 at 90 %
    "nmKof64": {"pattern": "nm", "m": 64},  # K = 64 (1 - sparsity): 16:64 at 75 %, the panels format's own width
}
RECOVERY = {"lr": 1e-3, "distill_alpha": 0.5, "distill_temperature": 2.0, "batch_size": 32, "seq_len": 64,
            "eval_max_steps": 16384}  # validation (the best-of-two choice) on its first 16,384 tokens
# --training distill: pure distillation with dropout off. The reference models were trained with dropout
# 0.5 and kept at their best validation checkpoint: training on their labels with that dropout raises
# validation loss, distillation alone with dropout 0 lowers it (qat_training_probe_charlstm-512x2.json)
TRAININGS = {"labels": RECOVERY,
             "distill": {**RECOVERY, "distill_alpha": 1.0, "distill_temperature": 1.0, "dropout": 0.0}}


def _out_dir(model: str) -> Path:
    d = RUNS / "strip_pruning" / model
    d.mkdir(parents=True, exist_ok=True)
    return d


def _write_row(path: Path, row: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(row, indent=1, default=str))
    os.replace(tmp, path)


def _compute(seconds: float, steps: int, calibration_tokens: int) -> dict:
    return {"seconds": round(seconds, 1), "device": "cpu", "threads": torch.get_num_threads(), "finetune_steps": steps,
            "calibration_tokens": calibration_tokens, "load_average": [round(x, 2) for x in os.getloadavg()]}


def strip_check(model, names: list[str], rows: int = 16, panel: int = 64, multiple: int = 4) -> dict:
    """How far each pruned weight is from the strip pattern: row blocks whose rows disagree on a
    kept column, and (row block, panel) kept counts that are not a multiple of `multiple`."""
    mixed = off = 0
    for n in names:
        w = model.get_parameter(n).detach().reshape(model.get_parameter(n).shape[0], -1) != 0
        R, C = w.shape
        for r0 in range(0, R, rows):
            blk = w[r0:r0 + rows]
            kept = blk.any(0)
            mixed += int((blk != kept).any(0).sum())
            for c0 in range(0, C, panel):
                k, width = int(kept[c0:c0 + panel].sum()), min(panel, C - c0)
                off += int(k % multiple != 0 and k != width)
    return {"columns_not_whole_strips": mixed, "panels_not_multiple_of_4": off}


def _nm_extra(label: str, sparsity: float) -> dict:
    """OBSPruning fields of the N:M patterns at `sparsity`; lazy blocks hold whole groups, so groups
    align on columns 0, M, 2M ... (and on the kernel's 64-column panels for nmKof64)."""
    if label == "nm1ofM":
        M = round(1 / (1 - sparsity))
        return {"m": M, "block": M * (128 // M)}
    if label == "nmKof64":
        return {"n": round(64 * (1 - sparsity)), "block": 128}
    return {}


def oneshot(base, task, base_loss: float, model_name: str, sparsity: float, patterns: list[str]) -> None:
    out = _out_dir(model_name)
    for label in patterns:
        key = f"oneshot-{label}-{round(100 * sparsity)}"
        if (out / f"{key}.json").exists():
            print(f"{key}: done already", flush=True)
            continue
        extra = _nm_extra(label, sparsity)
        cfg = OBSPruning(sparsity=sparsity, targets=TARGETS, **PATTERNS[label], **extra)
        m = copy.deepcopy(base)
        t0 = time.perf_counter()
        res = prune_obs_(m, cfg, task)
        sec = time.perf_counter() - t0
        mark_sparse_(m, list(res.masks))
        loss = task.evaluate(m, "test")["loss_nats"]
        path = save_model(m, out / key)
        row = {"stage": "oneshot", "pattern": label, "config": cfg.model_dump(mode="json"), "target_sparsity": sparsity,
               "sparsity": res.report["total"]["sparsity"], "nonzero_params": res.report["model"]["nonzero"],
               "test_loss": loss, "delta_pct_vs_dense": 100 * (loss / base_loss - 1),
               "artifact_bytes": artifact_bytes(path), "model_path": str(path.relative_to(RUNS.parent.parent)),
               "pattern_check": strip_check(m, list(res.masks)),
               "per_tensor_sparsity": {n: round(r["sparsity"], 4) for n, r in res.report["tensors"].items()},
               "relative_output_error": res.report.get("method", {}).get("relative_output_error"),
               "compute": _compute(sec, 0, cfg.calibration_batches * TOKENS_PER_BATCH)}
        _write_row(out / f"{key}.json", row)
        print(f"{key:36s} test {loss:.4f} ({row['delta_pct_vs_dense']:+.2f}%)  sparsity {row['sparsity']:.4f}  "
              f"{sec:.0f} s  {row['pattern_check']}", flush=True)


def _finetune(m, base, task, steps: int, training: str = "labels"):
    """Masked fine-tuning of `m` for `steps` steps with TRAININGS[training]; (model, seconds, record)."""
    from rnnslim.pipeline.builtin_stages import FinetuneConfig, finetune
    from rnnslim.pipeline.stage import StageContext

    cfg = FinetuneConfig(max_steps=steps, eval_every=steps, **TRAININGS[training])
    with tempfile.TemporaryDirectory() as tmp:
        ctx = StageContext(task=task, work_dir=Path(tmp), teacher=copy.deepcopy(base).eval(), progress=False)
        t0 = time.perf_counter()
        m = finetune(m, cfg, ctx) or m
        return m, time.perf_counter() - t0, {**cfg.model_dump(mode="json", exclude={"kind"}), "record": ctx.record}


def _finish_trained(m, masks, task, base_loss: float, out: Path, key: str, row: dict, seconds: float, steps: int,
                    calibration_tokens: int = 0) -> None:
    kept_ok = all(bool((m.get_parameter(n).detach()[~k] == 0).all()) for n, k in masks.items())
    loss = task.evaluate(m, "test")["loss_nats"]
    path = save_model(m, out / key)
    row = {**row, "masks_kept": kept_ok, "test_loss": loss, "delta_pct_vs_dense": 100 * (loss / base_loss - 1),
           "model_path": str(path.relative_to(RUNS.parent.parent)), "pattern_check": strip_check(m, list(masks)),
           "compute": _compute(seconds, steps, calibration_tokens)}
    _write_row(out / f"{key}.json", row)
    print(f"{key:36s} test {loss:.4f} ({row['delta_pct_vs_dense']:+.2f}%)  masks kept {kept_ok}  {seconds:.0f} s",
          flush=True)


def recover(base, task, base_loss: float, model_name: str, sparsity: float, patterns: list[str], steps: int,
            training: str = "labels") -> None:
    out = _out_dir(model_name)
    how = "" if training == "labels" else f"-{training}"  # the first rows' keys (labels) are kept
    for label in patterns:
        src, key = f"oneshot-{label}-{round(100 * sparsity)}", f"recover{steps}{how}-{label}-{round(100 * sparsity)}"
        if (out / f"{key}.json").exists() or not (out / f"{src}.json").exists():
            print(f"{key}: {'done already' if (out / f'{key}.json').exists() else 'no one-shot model'}", flush=True)
            continue
        m = load_model(out / src)
        masks = masks_from_model(m)
        m, sec, ft = _finetune(m, base, task, steps, training)
        row = {"stage": "recover", "pattern": label, "target_sparsity": sparsity, "from": src, "finetune": ft,
               "training": training}
        _finish_trained(m, masks, task, base_loss, out, key, row, sec, steps)


def agp_sparsities(final: float, stages: int) -> list[float]:
    """AGP's cubic ramp from 0 to `final` sampled at the end of each of `stages` equal phases."""
    return [round(final * (1 - (1 - k / stages) ** 3), 4) for k in range(1, stages + 1)]


def gradual(base, task, base_loss: float, model_name: str, sparsity: float, label: str, steps: int,
            stages: int) -> None:
    """AGP with OBS as the criterion: `stages` times (prune to the next sparsity of the cubic ramp
    with OBS reconstruction in the pattern, then steps / stages masked fine-tuning steps); the
    same total fine-tuning budget as `recover`."""
    out = _out_dir(model_name)
    key = f"gradual{steps}x{stages}-{label}-{round(100 * sparsity)}"
    if (out / f"{key}.json").exists():
        print(f"{key}: done already", flush=True)
        return
    m, seconds, schedule = copy.deepcopy(base), 0.0, []
    per_stage = [steps // stages + (k < steps % stages) for k in range(stages)]
    for s_k, n_k in zip(agp_sparsities(sparsity, stages), per_stage):
        cfg = OBSPruning(sparsity=s_k, targets=TARGETS, **PATTERNS[label], **_nm_extra(label, s_k))
        t0 = time.perf_counter()
        res = prune_obs_(m, cfg, task)
        seconds += time.perf_counter() - t0
        mark_sparse_(m, list(res.masks))
        m, sec, ft = _finetune(m, base, task, n_k)
        seconds += sec
        schedule.append({"sparsity": res.report["total"]["sparsity"], "finetune_steps": n_k,
                         "finetune_record": ft["record"]})
        print(f"  {key}: {s_k:.3f} -> sparsity {schedule[-1]['sparsity']:.4f}, {n_k} steps", flush=True)
    row = {"stage": "gradual", "pattern": label, "target_sparsity": sparsity, "config": cfg.model_dump(mode="json"),
           "schedule": schedule, "finetune": {**{k: v for k, v in ft.items() if k != "record"}, "max_steps": steps},
           "sparsity": schedule[-1]["sparsity"]}
    _finish_trained(m, res.masks, task, base_loss, out, key, row, seconds, steps,
                    stages * cfg.calibration_batches * TOKENS_PER_BATCH)


def collect(model_name: str, base_loss: float) -> None:
    """Rows of the committed JSON, each replaced by its run's row when that run is on disk (keyed by
    model_path), plus the runs not yet in it: a machine that lost the run directories keeps the rows."""
    out = RESULTS / f"strip_pruning_{model_name}.json"
    kept = json.loads(out.read_text()).get("strips", {}).get("rows", []) if out.exists() else []
    by_run = {r["model_path"]: r for r in kept if "model_path" in r}
    for p in sorted(_out_dir(model_name).glob("*.json")):
        row = json.loads(p.read_text())
        by_run[row["model_path"]] = row
    rows = list(by_run.values())
    def budget(r: dict) -> tuple:  # trained rows (recover, gradual) compare at the same steps, trained alike
        return (r["stage"] == "oneshot", r.get("finetune", {}).get("max_steps"), r["target_sparsity"],
                r.get("training", "labels"))

    ref = {budget(r): r["test_loss"] for r in rows if r["pattern"] == "unstructured"}
    for r in rows:
        u = ref.get(budget(r))
        r["delta_pct_vs_unstructured"] = None if u is None else 100 * (r["test_loss"] / u - 1)
    order = {p: i for i, p in enumerate(PATTERNS)}
    rows.sort(key=lambda r: (r["stage"] != "oneshot", r["target_sparsity"], order.get(r["pattern"], 99)))
    for r in rows:
        d = r["delta_pct_vs_unstructured"]
        print(f"{r['stage']:8s} {r.get('training', 'labels'):8s} {r['pattern']:22s} {r['target_sparsity']:.2f}  "
              f"test {r['test_loss']:.4f}  "
              f"vs unstructured {'-' if d is None else f'{d:+.2f}%'}", flush=True)
    update_results(out, "strips",
                   {"base_test_loss": base_loss, "rows": rows, "eval": "test split, whole, batch 1, state carried",
                    "targets": list(TARGETS), "recovery": RECOVERY, "trainings": TRAININGS})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=("oneshot", "recover", "gradual", "collect"))
    ap.add_argument("--model", default="charlstm-512x2")
    ap.add_argument("--sparsity", type=float, default=0.75)
    ap.add_argument("--patterns", nargs="+", default=list(PATTERNS), choices=list(PATTERNS))
    ap.add_argument("--steps", type=int, default=200, help="recover: fine-tuning steps, the same for every pattern")
    ap.add_argument("--stages", type=int, default=3, help="gradual: prune / fine-tune phases")
    ap.add_argument("--training", choices=list(TRAININGS), default="labels",
                    help="recover: labels (RECOVERY, the models' dropout) or distill (distillation only, dropout 0)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    base = load_model(MODELS / f"{args.model}.json")
    task = task_for_model(base, DATA)
    base_path = _out_dir(args.model) / "base_test_loss.txt"
    if not base_path.exists():
        base_path.write_text(repr(task.evaluate(base, "test")["loss_nats"]))
    base_loss = float(base_path.read_text())
    if args.what == "oneshot":
        oneshot(base, task, base_loss, args.model, args.sparsity, args.patterns)
    elif args.what == "recover":
        recover(base, task, base_loss, args.model, args.sparsity, args.patterns, args.steps, args.training)
    elif args.what == "gradual":
        for label in args.patterns:
            gradual(base, task, base_loss, args.model, args.sparsity, label, args.steps, args.stages)
    else:
        collect(args.model, base_loss)


if __name__ == "__main__":
    main()
