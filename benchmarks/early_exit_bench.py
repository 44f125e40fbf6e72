"""Early exit on stacked recurrent classifiers: accuracy vs fraction of layer-steps executed,
and the wall time it buys against the full model, measured in the same run.

    python benchmarks/early_exit_bench.py                          # JapaneseVowels, LSTM and GRU
    python benchmarks/early_exit_bench.py --data BasicMotions      # the second data set aeon ships

Per cell (LSTM, GRU; 3 layers x 64 units, Linear input projection, readout "last"):
1. train the classifier on the train split (aeon's TRAIN file less a stratified 20 % held
   out as validation; best validation checkpoint), seed 0;
2. add exit heads and train them two ways, each from the same trained model:
   heads  backbone and decoder frozen, only the heads learn (the full model is unchanged);
   joint  everything trains, loss = sum of the exits' losses (the model's decoder included);
   both with every prefix in the loss too (time_weight 1), so the exits also serve streaming;
3. calibrate on validation: the cheapest threshold whose validation accuracy is within
   1 point of the ORIGINAL trained model's; for whole sequences (depth exits) and for
   streaming (stop reading the sequence as well);
4. on the test split (aeon's TEST file): accuracy, change vs the original model, fraction of
   layer-steps executed, exits taken; the test curve accuracy vs fraction (all thresholds);
   wall time at 1 thread, median of 5 interleaved repeats after a warm-up, the full model
   timed in the same run on the same inputs: whole_batch (equal-length batches, <= 256),
   whole_b1 (one sequence at a time), stream_b1 (one step at a time, state carried; the full
   model stepped the same way).
The machine is shared (2 cores, other jobs running): the timing spread is in the JSON.
Results: benchmarks/results/early_exit_<data>.json, one key per cell (resumes: a cell already
there is skipped unless --force). Trained models are kept in benchmarks/runs/early_exit/.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, RUNS, update_results  # noqa: E402

from rnnslim.early_exit import EarlyExit, add_exits_, calibrate_exits_, exit_predict, train_exits_  # noqa: E402
from rnnslim.early_exit.timing import measure_exit_speed  # noqa: E402
from rnnslim.io.format import artifact_bytes, load_model, save_model  # noqa: E402
from rnnslim.measure.macs import recurrent_layer_macs  # noqa: E402
from rnnslim.models.sequence import SequenceModel  # noqa: E402
from rnnslim.tasks import make_task  # noqa: E402
from rnnslim.train import TrainConfig, load_best, train  # noqa: E402

MAX_DROP = 0.01


def _trained(task, cell: str, args) -> tuple[SequenceModel, dict]:
    path = RUNS / "early_exit" / f"{args.data}-{cell}"
    record = path.parent / f"{path.name}.training.json"  # the compute that made it, kept beside the model
    if (path / "model.json").exists() and record.exists() and not args.retrain:
        return load_model(path), {**json.loads(record.read_text()), "reused": str(path)}
    torch.manual_seed(0)
    model = SequenceModel(task.model_spec(cell=cell, hidden_size=args.hidden, num_layers=args.layers))
    model.task_meta = task.meta()
    t0 = time.perf_counter()
    result = train(model, task, TrainConfig(max_steps=args.steps, batch_size=32, lr=3e-3, eval_every=25, seed=0),
                   progress=False)
    load_best(model, result)
    save_model(model, path)
    info = {"steps": result.steps, "batch_size": 32, "lr": 3e-3, "wall_s": round(time.perf_counter() - t0, 2),
            "device": "cpu", "threads": 1, "best_valid_accuracy": result.best_metric}
    record.write_text(json.dumps(info))
    return model.eval(), info


def _macs(model, r, early_time: bool) -> tuple[int, int]:
    """(MACs executed, the full model's) of one ExitResult: input projection per step read, each
    recurrent layer per step it ran, every exit evaluated (heads; streaming: the decoder at each
    step too). The full model streaming evaluates its decoder at every step."""
    spec = model.spec
    layer = [recurrent_layer_macs(spec.cell, model.rnn.layers[k].input_size, s) for k, s in enumerate(model.rnn.specs)]
    proj = spec.input_size * spec.embed_size
    linears = [m.weight.numel() for m in model.exits.modules() if isinstance(m, torch.nn.Linear)]
    head = sum(linears) // len(model.exits.heads)  # MACs of one head (they are alike)
    dec = model.decoder.weight.numel()
    T = int(r.total_layer_steps // (len(layer) * len(r.exit_layer)))
    done = 0
    for e, s in zip(r.exit_layer.tolist(), r.steps_read.tolist()):
        ran = [(s - 1 + (e >= k + 1)) if early_time else T * (e >= k + 1) for k in range(len(layer))]
        done += s * proj + sum(n * m for n, m in zip(ran, layer)) + (dec if e == len(layer) else 0)
    done += r.head_evals * head
    full = len(r.exit_layer) * (T * (proj + sum(layer)) + (T if early_time else 1) * dec)
    return done, full


def _test_metrics(model, task, early_time: bool) -> dict:
    """Accuracy, fraction and exits taken on the test split with the stored threshold."""
    correct = n = steps = total = read = length = macs = full_macs = 0
    exits = [0] * len(model.rnn.layers)
    for b in task.equal_length_batches("test"):
        if early_time:
            rs = [exit_predict(model, b.inputs[:, i : i + 1], early_time=True) for i in range(b.inputs.shape[1])]
        else:
            rs = [exit_predict(model, b.inputs)]
        logits = torch.cat([r.logits for r in rs])
        correct += int((logits.argmax(-1) == b.targets).sum())
        n += len(b.targets)
        steps += sum(r.layer_steps for r in rs)
        total += sum(r.total_layer_steps for r in rs)
        read += sum(int(r.steps_read.sum()) for r in rs)
        length += b.inputs.shape[0] * len(b.targets)
        for r in rs:
            done, full = _macs(model, r, early_time)
            macs, full_macs = macs + done, full_macs + full
            for k in range(len(exits)):
                exits[k] += int((r.exit_layer == k + 1).sum())
    return {"accuracy": correct / n, "layer_steps_fraction": steps / total, "skipped": 1 - steps / total,
            "steps_read_fraction": read / length, "macs_fraction": macs / full_macs, "exited_at_layer": exits,
            "sequences": n}


def _variant(base, task, mode: str, base_valid: float, base_test: float, args) -> dict:
    model = copy.deepcopy(base)
    ee = EarlyExit(train_mode=mode, time_weight=1.0)
    torch.manual_seed(0)
    add_exits_(model, ee)
    t0 = time.perf_counter()
    result = train_exits_(model, task, ee, TrainConfig(max_steps=args.exit_steps, batch_size=32, lr=3e-3,
                                                       eval_every=25, seed=0))
    train_s = time.perf_counter() - t0
    row: dict = {"train_mode": mode, "training": {**result.summary(), "wall_s": round(train_s, 2), "device": "cpu",
                                                  "threads": 1},
                 "head_parameters": sum(p.numel() for p in model.exits.parameters()),
                 "full_test_accuracy": task.evaluate(model, "test")["accuracy"]}
    for key, early_time in (("whole", False), ("stream", True)):
        cal = calibrate_exits_(model, task, MAX_DROP, early_time=early_time, reference_accuracy=base_valid)
        test = _test_metrics(model, task, early_time)
        curve = calibrate_exits_(model, task, MAX_DROP, split="test", early_time=early_time, store=False).curve
        row[key] = {"threshold": cal.threshold, "valid_accuracy": cal.accuracy, "valid_fraction": cal.fraction,
                    "valid_reference_accuracy": cal.reference_accuracy, "valid_bound_met": cal.bound_met, "test": test,
                    "test_change_points": round(100 * (test["accuracy"] - base_test), 2),
                    "within_1_point": test["accuracy"] >= base_test - MAX_DROP - 1e-12,
                    "goal_40pct_skipped": test["skipped"] >= 0.4, "test_curve": curve}
    row["timing"] = measure_exit_speed(model, task, "test", threads=1, repeats=args.repeats)
    path = RUNS / "early_exit" / f"{args.data}-{base.spec.cell.value}-{mode}"
    save_model(model, path)
    row["artifact_bytes"] = artifact_bytes(path)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="JapaneseVowels")
    p.add_argument("--cells", default="lstm,gru")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--steps", type=int, default=300, help="optimizer steps training the classifier")
    p.add_argument("--exit-steps", type=int, default=200, help="optimizer steps training the exits")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--force", action="store_true", help="redo cells already in the results")
    p.add_argument("--retrain", action="store_true", help="retrain the classifiers (else reuse benchmarks/runs/)")
    args = p.parse_args()
    torch.set_num_threads(1)
    out = RESULTS / f"early_exit_{args.data.lower()}.json"
    done = json.loads(out.read_text()) if out.exists() else {}
    task = make_task("classify", args.data)
    for cell in args.cells.split(","):
        if cell in done and not args.force:
            print(f"{cell}: already in {out}; --force to redo")
            continue
        base, base_training = _trained(task, cell, args)
        base_valid, base_test = task.evaluate(base, "valid")["accuracy"], task.evaluate(base, "test")["accuracy"]
        row = {"data": args.data, "splits": {s: len(task.split(s)) for s in ("train", "valid", "test")},
               "model": {"cell": cell, "layers": args.layers, "hidden": args.hidden,
                         "parameters": sum(p.numel() for p in base.parameters())},
               "base": {"training": base_training, "valid_accuracy": base_valid, "test_accuracy": base_test},
               "max_drop": MAX_DROP, "variants": {}}
        for mode in ("heads", "joint"):
            row["variants"][mode] = _variant(base, task, mode, base_valid, base_test, args)
            v = row["variants"][mode]
            print(f"{args.data} {cell} {mode}: base test {base_test:.4f}; whole {v['whole']['test']['accuracy']:.4f} "
                  f"at {v['whole']['test']['layer_steps_fraction']:.3f}; stream {v['stream']['test']['accuracy']:.4f} "
                  f"at {v['stream']['test']['layer_steps_fraction']:.3f}; speedups "
                  + ", ".join(f"{k} {v['timing'][k]['speedup']:.2f}x"
                              for k in ("whole_batch", "whole_b1", "stream_b1")),
                  flush=True)
        update_results(out, cell, row)


if __name__ == "__main__":
    main()
