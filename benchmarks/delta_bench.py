"""Delta networks on the integer int8 kernel (issue 12, runtime sparsity): quality, MACs
skipped and step time per delta threshold.

    .venv/bin/python benchmarks/delta_bench.py charlm   [--model charlstm-512x2] [--chars 0]
    .venv/bin/python benchmarks/delta_bench.py forecast [--data Airline]

charlm: the reference model through int8_integer (8 calibration batches of 16 x 64, as
quantize_bench.py), then per global threshold (and a few per-layer pairs): test loss over
the whole test split as one stream in the C kernel (BENCHMARKING.md: batch 1, state carried,
zero start state), the share of the delta matrices' MACs skipped and of the whole step's
MACs executed (IntegerRunner.delta_stats), and the streaming step time of the C kernel
(batch 1, 1 thread, median of 5 x 200 steps over the test text with the state carried, the
dense int8 step measured in the same run before and after the sweep). The chosen row: the
largest skipped share within +1 % test loss of the int8 model without delta.
`--base-kernel COMMIT` also times that commit's dense kernel (did the delta code slow the
dense step?). Noise band of the loss: the dense int8 loss over the two halves of the test
split.

forecast: a small LSTM forecaster (2 x 64, window 24, horizon 1) trained here on an aeon
data set (`rnnslim train --task forecast --data Airline` equivalent, max_steps steps), made
int8_integer, then per threshold: test MSE / MAE (scaled and original units) with every
window run from the zero state in the C kernel (checked equal to task.evaluate of the same
model: the torch integer forward runs the same delta step), MACs skipped, step time.

Writes benchmarks/results/delta_<model>.json / delta_forecast_<data>.json (resumable: a
finished part is skipped unless --force).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA, MODELS, RESULTS, update_results  # noqa: E402

from rnnslim.io.format import load_model  # noqa: E402
from rnnslim.measure import streaming_latency  # noqa: E402
from rnnslim.quantize.int8 import Int8Config, Int8Mode, IntegerRunner, quantize_int8_  # noqa: E402
from rnnslim.tasks.charlm import CharLMTask  # noqa: E402

THRESHOLDS = [1, 2, 4, 8, 12, 16, 24, 32, 48, 64]
PAIRS = [{0: 16, 1: 32}, {0: 32, 1: 16}, {0: 8, 1: 48}, {0: 48, 1: 8}, {0: 48, 1: 24}, {0: 64, 1: 24}, {0: 64, 1: 32},
         {0: 96, 1: 32}]
LOSS_BUDGET = 0.01


def _done(path: Path, key: str, force: bool | str) -> bool:
    """`key` is in the results already (force: True redoes every part, or a comma list of key prefixes)"""
    if force is True or (isinstance(force, str) and any(key.startswith(k) for k in force.split(","))):
        return False
    return path.exists() and key in json.loads(path.read_text())


def _latency(runner: IntegerRunner, step) -> dict:
    lat = streaming_latency(step_fn=step, threads=1)
    return {k: lat[k] for k in ("median_ms", "spread_ms", "medians_ms", "steps", "repeats")} | {
        "variant": runner.variant.value, "simd_level": runner.simd_level}


def _token_steps(runner: IntegerRunner, tokens: list[int]):
    """step_fn over real test text (the skip rate depends on the input), state carried"""
    return runner.stream_step_fn(torch.tensor(tokens))


def _base_kernel_runner(model, commit: str) -> IntegerRunner:
    """An IntegerRunner on the dense kernel of `commit` (its kernel.c + rnnslim_core.h), stubs for the
    delta entry points it lacks, built with the native flags."""
    import rnnslim.quantize.int8.kernel as K
    import rnnslim.quantize.int8.runner as R
    from rnnslim.runtime.build import compile_shared

    tmp = Path(tempfile.mkdtemp(prefix="basekernel_"))
    for name in ("kernel.c", "rnnslim_core.h"):
        src = subprocess.run(["git", "show", f"{commit}:src/rnnslim/quantize/int8/{name}"], capture_output=True,
                             check=True, cwd=Path(__file__).resolve().parents[1]).stdout
        (tmp / name).write_bytes(src)
    (tmp / "stubs.c").write_text(
        "#include <stddef.h>\n#include <stdint.h>\n"
        "int rs_set_delta(void *h, int l, int32_t t, const void *a, const void *b) { return -1; }\n"
        "size_t rs_delta_bytes(const void *h) { return 0; }\n"
        "int rs_step_delta(void *h, int64_t t, void *s, void *d, float *o) { return -1; }\n"
        "int rs_run_delta(void *h, const void *t, int n, void *s, void *d, float *o) { return -1; }\n"
        "int rs_run_features_delta(void *h, const void *t, int n, void *s, void *d, float *o) { return -1; }\n")
    so = compile_shared([tmp / "kernel.c", tmp / "stubs.c"], K._FLAGS[K.KernelVariant.NATIVE],
                        f"rnnslim_int8_base_{commit[:8]}", depends=[tmp / "rnnslim_core.h"])
    real_build, real_load = K.build_kernel, R.load_kernel
    try:
        K.build_kernel = lambda variant=None: so
        R.load_kernel = lambda variant=None: K.load_kernel.__wrapped__(variant)
        return IntegerRunner(model, delta=None)
    finally:
        K.build_kernel, R.load_kernel = real_build, real_load


def _nll(runner: IntegerRunner, d: torch.Tensor, delta) -> dict:
    t0 = time.perf_counter()
    logits, state = runner.run(d[:-1])
    losses = torch.nn.functional.cross_entropy(logits, d[1:], reduction="none").double()
    nats = losses.mean().item()
    half = len(losses) // 2
    out = {"loss_nats": nats, "bits_per_char": nats / math.log(2), "tokens": len(losses),
           "halves_nats": [losses[:half].mean().item(), losses[half:].mean().item()],
           "eval_seconds": time.perf_counter() - t0}
    if delta is not None:
        out["delta"] = runner.delta_stats(state).to_dict()
    return out


def charlm(args) -> None:
    torch.set_num_threads(1)
    path = RESULTS / f"delta_{args.model}.json"
    base = load_model(MODELS / f"{args.model}.json")
    task = CharLMTask.for_model(base, DATA)
    d = task.split("test")
    if args.chars:
        d = d[: args.chars + 1]
    calib = [b.inputs for b in task.calibration_batches(8, batch_size=16, seq_len=64)]
    q = quantize_int8_(copy.deepcopy(base), Int8Config(mode=Int8Mode.INTEGER), calibration=calib)
    text = d[:1024].tolist()
    dense = IntegerRunner(q, delta=None)

    if not _done(path, "quality", args.force):
        rows = [{"threshold": None, **_nll(dense, d, None)}]
        for thr in [*THRESHOLDS, *PAIRS]:
            rows.append({"threshold": thr, **_nll(IntegerRunner(q, delta=thr), d, thr)})
            print(json.dumps({k: rows[-1][k] for k in ("threshold", "loss_nats")}
                             | {"skipped": rows[-1]["delta"]["skipped_fraction"]}), flush=True)
        update_results(path, "quality", {"rows": rows, "test_chars": len(d), "calibration": "8 x (16 x 64) train",
                                         "loss_budget": LOSS_BUDGET})
    quality = json.loads(path.read_text())["quality"]["rows"]
    ref = quality[0]["loss_nats"]
    ok = [r for r in quality[1:] if r["loss_nats"] <= ref * (1 + LOSS_BUDGET)]
    chosen = max(ok, key=lambda r: r["delta"]["skipped_fraction"]) if ok else None

    for variant in args.variants.split(","):
        key = f"latency_{variant}"
        if not args.latency or _done(path, key, args.force):
            continue
        dense = IntegerRunner(q, variant, delta=None)
        lat = {"dense_before": _latency(dense, _token_steps(dense, text))}
        if args.base_kernel and variant == "native":
            base_runner = _base_kernel_runner(q, args.base_kernel)
            lat[f"dense_kernel_{args.base_kernel}"] = _latency(base_runner, _token_steps(base_runner, text))
        for r in quality[1:]:
            thr = r["threshold"]
            runner = IntegerRunner(q, variant, delta={int(k): v for k, v in thr.items()} if isinstance(thr, dict)
                                   else thr)
            lat[json.dumps(thr)] = _latency(runner, _token_steps(runner, text))
            print(json.dumps({"variant": variant, "threshold": thr, "median_ms": lat[json.dumps(thr)]["median_ms"]}),
                  flush=True)
        lat["dense_after"] = _latency(dense, _token_steps(dense, text))
        if args.base_kernel and variant == "native":
            lat[f"dense_kernel_{args.base_kernel}_after"] = _latency(base_runner, _token_steps(base_runner, text))
        update_results(path, key, lat | {"threads": 1, "input": "the first 1024 test characters, cycled"})
    update_results(path, "chosen", None if chosen is None else {
        "threshold": chosen["threshold"], "loss_nats": chosen["loss_nats"], "loss_change": chosen["loss_nats"] / ref - 1,
        "skipped_fraction": chosen["delta"]["skipped_fraction"],
        "step_macs_fraction": chosen["delta"]["step_macs_fraction"]})


def _forecast_model(task, steps: int, seed: int = 0):
    from rnnslim.models.sequence import SequenceModel
    from rnnslim.train import TrainConfig, load_best, train

    torch.manual_seed(seed)
    model = SequenceModel(task.model_spec(cell="lstm", hidden_size=64, num_layers=2))
    model.task_meta = task.meta()
    t0 = time.perf_counter()
    result = train(model, task, TrainConfig(max_steps=steps, batch_size=16, lr=3e-3, eval_every=50, seed=seed),
                   progress=False)
    load_best(model, result)
    return model.eval(), {"steps": steps, "wall_s": time.perf_counter() - t0, "device": "cpu",
                          "batch_size": 16, "lr": 3e-3, **result.summary()}


def _window_predictions(runner: IntegerRunner, batch) -> tuple[torch.Tensor, dict | None]:
    """each window from the zero state in the kernel: (N, O) predictions, summed delta counters"""
    preds, counters = [], None
    for i in range(batch.inputs.shape[1]):
        logits, state = runner.run_features(batch.inputs[:, i])
        preds.append(logits[-1].clone())
        if runner.delta:
            c = state.delta[: 2 + 2 * len(runner.hidden)].clone()
            counters = c if counters is None else counters + c
    return torch.stack(preds), counters


def forecast(args) -> None:
    from rnnslim.quantize.int8.delta import delta_stats_of, set_delta_threshold_
    from rnnslim.tasks.forecast import ForecastTask

    torch.set_num_threads(1)
    path = RESULTS / f"delta_forecast_{args.data}.json"
    task = ForecastTask(args.data, window=args.window)
    model, training = _forecast_model(task, args.steps)
    float_metrics = task.evaluate(model, "test")
    calib = [b.inputs for b in task.calibration_batches(4, batch_size=16)]
    q = quantize_int8_(copy.deepcopy(model), Int8Config(mode=Int8Mode.INTEGER), calibration=calib)
    test = next(task.batches("test", 10**6))  # every test window: inputs (window, N, F)
    rows = []
    for thr in [None, *THRESHOLDS]:
        m = set_delta_threshold_(copy.deepcopy(q), thr)
        runner = IntegerRunner(m)
        preds, counters = _window_predictions(runner, test)
        metrics = task.evaluate(m, "test")  # the torch integer forward: the same delta arithmetic
        mse = torch.nn.functional.mse_loss(preds, test.targets).item()
        if not math.isclose(mse, metrics["mse"], rel_tol=1e-6):
            raise AssertionError(f"kernel MSE {mse} != torch integer MSE {metrics['mse']} at threshold {thr}")
        feats = test.inputs.transpose(0, 1).reshape(-1, test.inputs.shape[-1]).contiguous()  # window after window
        box = {"i": 0}

        def step_fn(state, runner=runner, feats=feats, box=box):
            state = state if state is not None else runner.init_state()
            if box["i"] % args.window == 0:
                state.reset()  # each window from the zero state, as evaluated
            runner.step_features(feats[box["i"] % len(feats)], state)
            box["i"] += 1
            return state

        row = {"threshold": thr, **{k: metrics[k] for k in ("mse", "mae", "mse_orig", "mae_orig", "windows")}}
        if counters is not None:
            row["delta"] = delta_stats_of(runner.program, counters.numpy()).to_dict()
        if args.latency:
            row["latency"] = _latency(runner, step_fn)
        rows.append(row)
        print(json.dumps({k: row[k] for k in ("threshold", "mse")} | {
            "skipped": row.get("delta", {}).get("skipped_fraction")}), flush=True)
    ref = rows[0]["mse"]
    ok = [r for r in rows[1:] if r["mse"] <= ref * (1 + LOSS_BUDGET)]
    chosen = max(ok, key=lambda r: r["delta"]["skipped_fraction"]) if ok else None
    update_results(path, "forecast", {
        "data": args.data, "window": args.window, "horizon": 1, "model": "LSTM 2 x 64, input projection 64",
        "training": training, "float_test": float_metrics, "rows": rows,
        "chosen": None if chosen is None else {"threshold": chosen["threshold"], "mse": chosen["mse"],
                                               "mse_change": chosen["mse"] / ref - 1,
                                               "skipped_fraction": chosen["delta"]["skipped_fraction"]},
        "loss_budget": LOSS_BUDGET, "note": "test windows are few (tiny aeon series): the MSE noise band is wide"})


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="part", required=True)
    c = sub.add_parser("charlm")
    c.add_argument("--model", default="charlstm-512x2")
    c.add_argument("--chars", type=int, default=0, help="evaluate the first N test characters (0: all)")
    c.add_argument("--base-kernel", default=None, help="also time this commit's dense kernel")
    c.add_argument("--variants", default="native,portable", help="kernel variants to time")
    f = sub.add_parser("forecast")
    f.add_argument("--data", default="Airline")
    f.add_argument("--window", type=int, default=24)
    f.add_argument("--steps", type=int, default=600)
    for p in (c, f):
        p.add_argument("--no-latency", dest="latency", action="store_false")
        p.add_argument("--force", action="store_true", help="redo every part")
        p.add_argument("--redo", default="", help="redo these parts (comma list: quality, latency)")
    args = ap.parse_args()
    args.force = args.force or (args.redo or False)
    (charlm if args.part == "charlm" else forecast)(args)


if __name__ == "__main__":
    main()
