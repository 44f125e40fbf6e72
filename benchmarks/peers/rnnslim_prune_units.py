"""rnnslim's side of the Torch-Pruning peer: prune_units + fine-tune on a reference model, as torch tensors.

    .venv/bin/python benchmarks/peers/rnnslim_prune_units.py --model charlstm-512x2 --hidden 384 \
        --steps 2000 --out /tmp/peers_tp_rnnslim_384

Run with the project's venv (it imports rnnslim); torch_pruning_bench.py (another venv, no rnnslim) calls it
as a subprocess. It runs the recipe the deploy rows use (benchmarks/recipes/deploy-units384-int8.yaml /
deploy-units320-int8.yaml) without the int8 stage:

    prune_units  ratio 1 - hidden / H, round_to 16, criterion magnitude, reduce --reduce (default l2), refit
                 --refit (default auto: no least-squares re-fit, as a finetune stage follows)
    finetune     max_steps --steps, lr 1e-3 (FinetuneFields: AdamW, batch 32, seq_len 64, clip 1.0,
                 5 % warm-up, cosine to 1 %, whole-validation evaluations every steps // 5, best kept);
                 --training distill: distill_alpha 1, distill_temperature 1, dropout 0 (distillation alone
                 from the input model, dropout off)

through rnnslim.pipeline.run_pipeline (one thread), and writes into --out, in the reference models' torch
layout (embedding.weight, rnn.weight_ih_l{k}, ..., decoder.weight / bias; the LSTM gate order i, f, g, o):

    oneshot.safetensors     after prune_units (and its re-fit), before any fine-tuning
    finetuned.safetensors   after the finetune stage (its best validation candidate)
    record.json             recipe, per-stage records (sizes, re-fit, fine-tune history), wall seconds
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import DATA, MODELS, prune_units_recipe  # noqa: E402

from rnnslim.io.format import load_model  # noqa: E402
from rnnslim.pipeline.recipe import load_recipe  # noqa: E402
from rnnslim.pipeline.runner import run_pipeline  # noqa: E402
from rnnslim.tasks import task_for_model  # noqa: E402



def torch_layout(model) -> dict[str, torch.Tensor]:
    """rnnslim's SequenceModel state (rnn.layers.K.weight_ih_l0, ...) renamed to one nn.LSTM/GRU's (rnn.weight_ih_lK)."""
    out = {}
    for name, t in model.state_dict().items():
        if name.startswith("rnn.layers."):
            _, _, k, tensor = name.split(".")
            name = f"rnn.{tensor[: -len('l0')]}l{k}"
        out[name] = t.detach().float().contiguous().clone()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="charlstm-512x2")
    ap.add_argument("--hidden", type=int, required=True, help="units kept per layer (a multiple of 16)")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--refit", choices=("auto", "true", "false"), default="auto",
                    help="prune_units' least-squares re-fit: auto (its default: not before the finetune stage "
                         "that follows here), true (the recipes' setting before 2026-12) or false")
    ap.add_argument("--reduce", choices=("l1", "l2"), default="l2",
                    help="how prune_units adds up a unit's weight scores (its gate rows, recurrent column and "
                         "consumers' columns): l2 (the group norm, Torch-Pruning's too; prune_units' default "
                         "since 2026-12) or l1 (the sum: the default before, and the committed recipes')")
    ap.add_argument("--training", choices=("labels", "distill"), default="labels",
                    help="the finetune stage on the labels with the model's dropout (the recipes'), or by "
                         "distillation alone from the input model with dropout off")
    args = ap.parse_args()
    torch.set_num_threads(1)
    model = load_model(MODELS / f"{args.model}.json")
    full = model.spec.hidden_size if hasattr(model.spec, "hidden_size") else model.rnn.layers[0].hidden_size
    ratio = 1 - args.hidden / full
    args.out.mkdir(parents=True, exist_ok=True)
    recipe_path = args.out / "recipe.yaml"
    recipe_path.write_text(prune_units_recipe(f"peers-tp-units{args.hidden}", ratio, args.reduce, args.refit,
                                              args.steps, args.training == "distill"))
    task = task_for_model(model, DATA)
    t0 = time.perf_counter()
    run_dir = args.out / "run"
    run_pipeline(model, load_recipe(recipe_path), task, run_dir, resume=False, progress=False)
    wall = time.perf_counter() - t0
    oneshot = load_model(next((run_dir / "stages").glob("01-*")) / "model")
    final = load_model(run_dir / "model")
    for name, m in (("oneshot", oneshot), ("finetuned", final)):
        sizes = [layer.hidden_size for layer in m.rnn.layers]
        if sizes != [args.hidden] * len(sizes):
            raise ValueError(f"{name}: rnnslim kept {sizes} units, expected {args.hidden} per layer")
        save_file(torch_layout(m), str(args.out / f"{name}.safetensors"))
    report = json.loads((run_dir / "report.json").read_text()) if (run_dir / "report.json").exists() else None
    (args.out / "record.json").write_text(json.dumps(
        {"recipe": recipe_path.read_text(), "wall_s": wall, "report": report}, indent=1, default=str))


if __name__ == "__main__":
    main()
