"""GPU figures: streaming-step latency on CUDA (eager, CUDA graph, cuDNN nn.LSTM/GRU eager and
as a CUDA graph) and fine-tuning speed on one GPU or several (DDP under torchrun).

    python benchmarks/gpu_bench.py                      # latency + fine-tuning on cuda:0
    python benchmarks/gpu_bench.py --part latency --quick
    torchrun --standalone --nproc_per_node 2 benchmarks/gpu_bench.py --part train   # DDP, 2 GPUs

Results: benchmarks/results/gpu_bench.json (keys `latency/<model>` and `train/<model>/<world>gpu`,
each with the device names; an existing key is kept unless --force, so an interrupted run
resumes). It refuses to run without CUDA (exit status 2): GPU numbers only come from a GPU.
Models: ../shared/models (charlstm-512x2, chargru-512x2 by default); data: tinyshakespeare.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA, MODELS, RESULTS, update_results  # noqa: E402

OUT = RESULTS / "gpu_bench.json"


def _done(key: str, force: bool) -> bool:
    return not force and OUT.exists() and key in json.loads(OUT.read_text())


def latency(name: str, quick: bool, force: bool) -> None:
    from rnnslim.io.format import load_model
    from rnnslim.measure import measure
    from rnnslim.tasks import task_for_model

    key = f"latency/{name}"
    if _done(key, force):
        print(f"{key}: in {OUT} already (--force to redo)")
        return
    model = load_model(MODELS / f"{name}.json", map_location="cuda")
    task = task_for_model(model, data=str(DATA))
    report = measure(model, task=task, threads=(1,), quick=quick, artifact_path=MODELS / f"{name}.safetensors",
                     log=lambda m: print(f"  {m}", file=sys.stderr))
    print(report.table())
    update_results(OUT, key, {"quick": quick, "device": torch.cuda.get_device_name(), "report": report.to_dict()})


def finetune(name: str, steps: int, batch: int, force: bool) -> None:
    from rnnslim.io.format import load_model
    from rnnslim.tasks import task_for_model
    from rnnslim.train import TrainConfig, train
    from rnnslim.utils.distributed import process_rank

    world = int(os.environ.get("WORLD_SIZE", "1"))
    key = f"train/{name}/{world}gpu"
    if _done(key, force):  # every rank reads it: all skip or none does
        print(f"{key}: in {OUT} already (--force to redo)")
        return
    model = load_model(MODELS / f"{name}.json")
    task = task_for_model(model, data=str(DATA))
    cfg = TrainConfig(max_steps=steps, batch_size=batch, seq_len=128, lr=5e-4, eval_input=False,
                      eval_max_steps=20_000, checkpoint_every=10**6, device="cuda")
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    result = train(model, task, cfg, progress=False)
    wall = time.perf_counter() - t0
    if process_rank() != 0:
        return
    row = {"steps": result.steps, "global_batch": batch, "seq_len": 128, "world": world, "wall_s": round(wall, 2),
           "tokens_per_s": round(result.steps * batch * 128 / wall), "valid_loss_after": result.history[-1]["loss"],
           "device": torch.cuda.get_device_name(), "note": "wall includes one validation pass (20k tokens)"}
    print(json.dumps({key: row}))
    update_results(OUT, key, row)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=("latency", "train", "all"), default="all")
    ap.add_argument("--models", default="charlstm-512x2,chargru-512x2")
    ap.add_argument("--quick", action="store_true", help="short latency runs (not benchmark figures)")
    ap.add_argument("--steps", type=int, default=200, help="fine-tuning steps")
    ap.add_argument("--batch", type=int, default=64, help="global batch of the fine-tuning run")
    ap.add_argument("--force", action="store_true", help="redo keys already in the results file")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print(f"gpu_bench: needs a CUDA GPU; torch {torch.__version__} sees none "
              f"({'built without CUDA' if torch.version.cuda is None else 'no device visible'}). "
              "GPU figures only come from a GPU run.", file=sys.stderr)
        sys.exit(2)
    torch.set_num_threads(1)
    for name in args.models.split(","):
        if args.part in ("latency", "all") and int(os.environ.get("WORLD_SIZE", "1")) == 1:
            latency(name, args.quick, args.force)
        if args.part in ("train", "all"):
            finetune(name, args.steps, args.batch, args.force)


if __name__ == "__main__":
    main()
