"""DCT-domain sparsity vs time-domain magnitude pruning at equal bytes, one-shot (no fine-tuning).

    python benchmarks/dct_vs_magnitude.py --model charlstm-512x2 [--fractions 0.1 0.2 0.3]

Targets: the weight matrices W_ih and W_hh of every recurrent layer and the output layer
(decoder.weight); the embedding and all biases stay dense fp32 in every row. Budget
denominator: the fp32 bytes of those target matrices (4 bytes x their elements; 16,910,336
bytes for charlstm-512x2). At each fraction f of it (10 / 20 / 30 %):

- dct: rnnslim.transform.dct_sparsify_ with target_bytes_fraction=f, row-wise and in 8 x 8
  and 32 x 32 blocks, coefficients as 8- or 16-bit codes with a float32 scale per row, the
  same fraction of coefficients kept in every tensor (scope layer); row-wise 8-bit also with
  one threshold over all targets (scope global);
- magnitude: rnnslim.prune.prune_unstructured_ (magnitude, scope layer and global), fp32
  values in sparse storage (sparse_auto: bitmap or CSR, whichever is smaller), the sparsity
  bisected so that the stored bytes of the targets just fit f;
- magnitude + int8: the same pruning, then weight-only int8 (one fp16 scale per row,
  symmetric: a pruned weight is a zero code) with the int8 codes in sparse storage; where
  even dense int8 is below f, the row is dense int8 and says so;
- block-circulant (k = 4, 8, 16: 1/k of the numbers, fractions 25 / 12.5 / 6.25 %) as extra rows.

Each row: test loss (whole test split as one stream, batch 1, state carried: the evaluation
of prune_curves.py, task.evaluate), its change vs the input model, the validation loss (the
same evaluation on the validation split: a check on changes that look too good), the bytes
the targets take in the saved safetensors file and their fraction of the denominator, and
artifact_bytes (manifest + weights, everything needed to run). Noise band of the test
loss: benchmarks/noise_band.py (table_parts.NOISE_BAND, BENCHMARKING.md's definition). One thread.
Resumable: rows already in the results file are kept (--redo to recompute). Writes
benchmarks/results/dct_vs_magnitude_<model>.json (+ .png).
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
from safetensors import safe_open

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA, MODELS, RESULTS, provenance  # noqa: E402

from rnnslim.io.format import artifact_bytes, load_model, save_model  # noqa: E402
from rnnslim.io.sparse_encoding import choose_format, encoded_nbytes  # noqa: E402
from rnnslim.prune.masks import mark_sparse_  # noqa: E402
from rnnslim.prune.targets import target_names  # noqa: E402
from rnnslim.prune.unstructured import UnstructuredPruning, prune_unstructured_  # noqa: E402
from rnnslim.quantize.api import WeightOnly, quantize_  # noqa: E402
from rnnslim.tasks import task_for_model  # noqa: E402
from rnnslim.transform import BlockCirculant, DCTSparsity, block_circulant_, dct_sparsify_  # noqa: E402
from rnnslim.utils.atomic import write_json_atomic  # noqa: E402

TARGETS = ("input", "recurrent", "output")
DCT_CASES = [("row", None, 8, "layer"), ("row", None, 16, "layer"), ("8x8", (8, 8), 8, "layer"),
             ("8x8", (8, 8), 16, "layer"), ("32x32", (32, 32), 8, "layer"), ("32x32", (32, 32), 16, "layer"),
             ("row", None, 8, "global")]


def _data_bytes(model_dir: Path) -> int:
    """Bytes of tensor data in the saved safetensors file (headers and manifest not counted)."""
    with safe_open(str(model_dir / "model.safetensors"), framework="pt") as f:
        total = 0
        for k in f.keys():
            s = f.get_slice(k)
            n = 1
            for d in s.get_shape():
                n *= d
            total += n * {"F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
                          "BOOL": 1, "F64": 8}[s.get_dtype()]
    return total


def _sized(model) -> tuple[int, int]:
    """(artifact bytes, tensor data bytes) of the model as saved."""
    with tempfile.TemporaryDirectory() as tmp:
        save_model(model, Path(tmp) / "m")
        return artifact_bytes(Path(tmp) / "m"), _data_bytes(Path(tmp) / "m")


def _magnitude(base, sparsity: float, scope: str, int8: bool):
    m = copy.deepcopy(base)
    if sparsity > 0:
        res = prune_unstructured_(m, UnstructuredPruning(sparsity=sparsity, scope=scope, targets=TARGETS))
        mark_sparse_(m, list(res.masks))
    if int8:
        m.tensor_encodings = {}
        quantize_(m, WeightOnly(bits=8, group_size=None, targets=("rnn", "decoder")))
        codes = [n for n, _ in m.named_buffers() if n.endswith(".codes")]
        m.tensor_encodings = {n: {"encoding": "sparse_auto"} for n in codes}
    return m


def _estimate(m) -> int:
    """Stored bytes of every tensor with its encoding (sparse_auto picks the smallest), no file written."""
    enc = getattr(m, "tensor_encodings", {}) or {}
    tensors = {**dict(m.named_parameters()), **dict(m.named_buffers())}
    return sum(encoded_nbytes(t.detach(), choose_format(t.detach()) if n in enc else "dense") for n, t in tensors.items())


def _fit_sparsity(base, budget_total: int, scope: str, int8: bool) -> float | None:
    """Lowest sparsity (to 1e-4) whose estimated stored bytes fit; None when dense already fits."""
    if _estimate(_magnitude(base, 0.0, scope, int8)) <= budget_total:
        return None
    lo, hi = 0.0, 0.9999
    while hi - lo > 1e-4:
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if _estimate(_magnitude(base, mid, scope, int8)) <= budget_total else (mid, hi)
    return hi


def _cases(fractions: list[float]) -> list[tuple[str, dict]]:
    out = []
    for f in fractions:
        for label, block, bits, scope in DCT_CASES:
            out.append((f"dct {label} {bits}-bit {scope} @{f:.0%}",
                        {"family": f"dct {label} {bits}-bit" + (" global" if scope == "global" else ""),
                         "kind": "dct", "fraction": f, "block": block, "bits": bits, "scope": scope}))
        for scope in ("layer", "global"):
            out.append((f"magnitude/{scope} fp32 sparse @{f:.0%}",
                        {"family": f"magnitude/{scope} fp32", "kind": "magnitude", "fraction": f, "scope": scope,
                         "int8": False}))
        out.append((f"magnitude/layer + int8 sparse codes @{f:.0%}",
                    {"family": "magnitude/layer + int8", "kind": "magnitude", "fraction": f, "scope": "layer",
                     "int8": True}))
    for k in (4, 8, 16):
        out.append((f"block-circulant k={k}", {"family": "block-circulant", "kind": "circulant", "block": k,
                                                "fraction": 1 / k}))
    return out


def _build(base, case: dict, denom: int, other_bytes: int) -> tuple[object, dict]:
    """The compressed model of one case and what was done to it."""
    if case["kind"] == "dct":
        m = copy.deepcopy(base)
        res = dct_sparsify_(m, DCTSparsity(target_bytes_fraction=case["fraction"], block=case["block"],
                                           bits=case["bits"], scope=case["scope"], targets=TARGETS))
        return m, {"keep_fraction": {n: round(r["keep_fraction"], 5) for n, r in res.report["tensors"].items()},
                   "relative_weight_error": {n: round(r["relative_error"], 4) for n, r in res.report["tensors"].items()}}
    if case["kind"] == "circulant":
        m = copy.deepcopy(base)
        res = block_circulant_(m, BlockCirculant(block=case["block"], targets=TARGETS))
        return m, {"relative_weight_error": {n: round(r["relative_error"], 4)
                                             for n, r in res.report["tensors"].items()}}
    budget_total = other_bytes + case["fraction"] * denom  # every other tensor stays dense fp32
    s = _fit_sparsity(base, budget_total, case["scope"], case["int8"])
    m = _magnitude(base, s or 0.0, case["scope"], case["int8"])
    note = "dense int8 is already below the budget" if s is None else ""
    return m, {"sparsity": s or 0.0, "note": note}


def _plot(rows: dict, dense_loss: float, path: Path, model: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fams: dict[str, list] = {}
    for r in rows.values():
        if r.get("family"):
            fams.setdefault(r["family"], []).append((r["target_fraction"], r["test_loss"]))
    fig, ax = plt.subplots(figsize=(9, 5.5))
    colors = plt.get_cmap("tab20").colors
    for i, (fam, pts) in enumerate(sorted(fams.items())):
        pts.sort()
        style, marker = ("--", "o") if fam.startswith("dct") else (":", "s") if "circulant" in fam else ("-", "^")
        ax.plot([100 * p[0] for p in pts], [p[1] for p in pts], style, marker=marker, color=colors[i % 20], label=fam)
    ax.axhline(dense_loss, color="k", lw=0.8, label="dense fp32")
    ax.set_xlabel("stored bytes of the weight matrices, % of their fp32 bytes")
    ax.set_ylabel("test loss (nats/char, whole split)")
    ax.set_yscale("log")
    ax.set_title(f"{model}: one-shot DCT-domain vs magnitude pruning (no fine-tuning)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="charlstm-512x2")
    ap.add_argument("--fractions", type=float, nargs="+", default=[0.1, 0.2, 0.3])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--redo", action="store_true", help="recompute rows already in the results file")
    ap.add_argument("--plot-only", action="store_true", help="redraw the PNG from the results file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = RESULTS / f"dct_vs_magnitude_{args.model}.json"
    data = json.loads(out.read_text()) if out.exists() and not args.redo else {}
    rows: dict = data.get("rows", {})
    if args.plot_only:
        _plot(rows, rows["dense"]["test_loss"], out.with_suffix(".png"), args.model)
        return

    base = load_model(MODELS / f"{args.model}.json")
    task = task_for_model(base, DATA)
    names = target_names(base, TARGETS)
    params = dict(base.named_parameters())
    denom = sum(4 * params[n].numel() for n in names)
    if "dense" not in rows:
        loss = task.evaluate(base, "test")
        art, data_bytes = _sized(base)
        rows["dense"] = {"method": "dense fp32", "test_loss": loss["loss_nats"], "bits_per_char": loss["bits_per_char"],
                         "artifact_bytes": art, "tensor_data_bytes": data_bytes, "target_bytes": denom,
                         "target_fraction": 1.0}
    dense = rows["dense"]
    other = dense["tensor_data_bytes"] - denom  # embedding + biases: dense fp32 in every row

    def save() -> None:
        write_json_atomic(out, {"benchmark": "dct_vs_magnitude", "model": args.model, "targets": names,
                                "denominator": {"what": "fp32 bytes of the target weight matrices "
                                                        "(4 x elements of W_ih, W_hh of each layer and decoder.weight)",
                                                "bytes": denom},
                                "eval": "test split, whole (55,768 predictions), batch 1, state carried; one-shot, "
                                        "no fine-tuning, no calibration data",
                                "noise_band": "benchmarks/results/noise_band.json (noise_band: spread over disjoint halves of the split)",
                                "provenance": provenance(), "threads": args.threads, "rows": rows})

    if "valid_loss" not in dense:
        dense["valid_loss"] = task.evaluate(base, "valid")["loss_nats"]
    save()
    for key, case in _cases(args.fractions):
        if key in rows:
            if "valid_loss" not in rows[key]:  # rows of an earlier run: the validation check too
                rows[key]["valid_loss"] = task.evaluate(_build(base, case, denom, other)[0], "valid")["loss_nats"]
                save()
            continue
        t0 = time.perf_counter()
        m, info = _build(base, case, denom, other)
        seconds = time.perf_counter() - t0
        loss = task.evaluate(m, "test")
        valid = task.evaluate(m, "valid")["loss_nats"]
        art, data_bytes = _sized(m)
        tb = data_bytes - other
        rows[key] = {"method": key, **case, "block": list(case["block"]) if isinstance(case.get("block"), tuple)
                     else case.get("block"), "test_loss": loss["loss_nats"], "bits_per_char": loss["bits_per_char"],
                     "delta": loss["loss_nats"] - dense["test_loss"],
                     "delta_pct": 100 * (loss["loss_nats"] / dense["test_loss"] - 1), "valid_loss": valid,
                     "target_bytes": tb,
                     "target_fraction": tb / denom, "artifact_bytes": art,
                     "compute": {"seconds": round(seconds, 1), "device": "cpu", "threads": args.threads,
                                 "finetune_steps": 0, "calibration_tokens": 0}, **info}
        print(f"{key:45s} loss {loss['loss_nats']:.4f} ({rows[key]['delta_pct']:+.1f}%)  targets {tb:,} B "
              f"({tb / denom:.3f})  artifact {art:,} B", flush=True)
        save()
    _plot(rows, dense["test_loss"], out.with_suffix(".png"), args.model)
    print("\n| method | budget | targets' bytes (% of fp32) | artifact bytes | test loss | change | valid loss |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows.values():
        b = f"{r['fraction']:.0%}" if "fraction" in r else "-"
        print(f"| {r['method']} | {b} | {r['target_bytes']:,} ({100 * r['target_fraction']:.1f} %) | "
              f"{r['artifact_bytes']:,} | {r['test_loss']:.4f} | {r.get('delta_pct', 0):+.1f} % | "
              f"{r.get('valid_loss', float('nan')):.4f} |")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
