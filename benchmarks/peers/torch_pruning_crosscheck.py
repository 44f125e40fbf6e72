"""Cross-check for torch_pruning_bench.py: is a gap between the tools the fine-tune loop or the starting point?

    /work/peers-torch-pruning/bin/python benchmarks/peers/torch_pruning_crosscheck.py \
        /tmp/peers_tp_rnnslim_384_XXXX/oneshot.safetensors 200 [--model charlstm-512x2]

Fine-tunes rnnslim's one-shot model (rnnslim_prune_units.py's oneshot.safetensors: prune_units + its re-fit)
with torch_pruning_bench.finetune, the loop the Torch-Pruning model gets (the first STOP steps of the same
200-step schedule), and prints / writes its validation history as JSON (--out). Compare it with rnnslim's own
finetune stage history (run/stages/02-finetune/work/train/history.json) from the same start: equal numbers
mean the two loops agree, and a remaining gap between the tools comes from where pruning left the model.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).parent))
import torch_pruning_bench as bench  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("weights", type=Path, help="oneshot.safetensors written by rnnslim_prune_units.py")
    ap.add_argument("stop", type=int, help="stop after this many steps of the schedule")
    ap.add_argument("--steps", type=int, default=200, help="the schedule's length (the budget of the main run)")
    ap.add_argument("--model", default="charlstm-512x2")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    spec, _ = bench.load_reference(args.model)
    ids = bench.load_text_ids(spec["vocab"])
    model = bench.PrunedCharRNN.from_tensors(load_file(str(args.weights)))
    ft = bench.finetune(model, bench.split(ids, "train"), bench.split(ids, "valid"), args.steps, 1e-3,
                        stop_at=args.stop)
    out = {"what": f"rnnslim one-shot model ({args.weights.name}) fine-tuned with torch_pruning_bench.finetune, "
                   f"the first {args.stop} steps of the {args.steps}-step schedule", "finetune": ft}
    print(json.dumps(out))
    if args.out:
        args.out.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
