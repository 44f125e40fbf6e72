"""How prune_units should add up a unit's weight scores: L1 (sum of |w|) or L2 (the group norm).

    python benchmarks/prune_units_reduce.py                          # both models, 384 / 320 / 256 units
    python benchmarks/prune_units_reduce.py --models chargru-512x2 --hidden 384

A hidden unit's group is every weight that goes with it: its gate rows (4 for an LSTM, 3 for a GRU) in
weight_ih / weight_hh / biases, its column of weight_hh, and the columns of the layers that read it. With
`reduce: l1` the unit's score is the sum of |w| over that group, with `reduce: l2` its L2 norm (what
Torch-Pruning's GroupMagnitudeImportance uses); L2 weighs a unit by its largest weights more than by how
many small ones it has. This runs the prune_units stage alone (criterion magnitude, round_to 16, the
least-squares re-fit on, as in benchmarks/recipes/deploy-units*-int8.yaml) through run_pipeline, one
shot (no fine-tuning), for each reduction, and reads the pipeline's own valid / test loss (whole splits,
batch 1). The fine-tuned comparison at 200 steps is in results/peers_torch_pruning.json. One thread.
Writes benchmarks/results/prune_units_reduce.json (merged per model).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA, MODELS, RESULTS, prune_units_recipe, update_results  # noqa: E402

from rnnslim.io.format import load_model  # noqa: E402
from rnnslim.pipeline.recipe import load_recipe  # noqa: E402
from rnnslim.pipeline.runner import run_pipeline  # noqa: E402
from rnnslim.tasks import task_for_model  # noqa: E402

OUT = RESULTS / "prune_units_reduce.json"


def one_shot(model_name: str, hidden: int, reduce: str, work: Path) -> dict:
    model = load_model(MODELS / f"{model_name}.json")
    full = model.rnn.layers[0].hidden_size
    recipe = work / f"{reduce}-{hidden}.yaml"
    recipe.write_text(prune_units_recipe(f"reduce-{reduce}-units{hidden}", 1 - hidden / full, reduce))
    t0 = time.perf_counter()
    run_dir = work / f"{reduce}-{hidden}"
    run_pipeline(model, load_recipe(recipe), task_for_model(model, DATA), run_dir, resume=False, progress=False)
    report = json.loads((run_dir / "report.json").read_text())
    base, row = report["rows"][0]["measurements"]["metrics"], report["rows"][1]["measurements"]["metrics"]
    sizes = [ly.hidden_size for ly in load_model(run_dir / "model").rnn.layers]
    if sizes != [hidden] * len(sizes):
        raise ValueError(f"prune_units kept {sizes} units, expected {hidden} per layer")
    return {"hidden": hidden, "reduce": reduce, "valid_loss": row["valid"]["loss_nats"],
            "test_loss": row["test"]["loss_nats"], "input_valid_loss": base["valid"]["loss_nats"],
            "input_test_loss": base["test"]["loss_nats"], "tokens": row["test"]["tokens"],
            "wall_s": round(time.perf_counter() - t0, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=["charlstm-512x2", "chargru-512x2"])
    ap.add_argument("--hidden", nargs="+", type=int, default=[384, 320, 256])
    args = ap.parse_args()
    torch.set_num_threads(1)
    for name in args.models:
        rows = []
        with tempfile.TemporaryDirectory() as tmp:
            for hidden in args.hidden:
                for reduce in ("l1", "l2"):
                    rows.append(one_shot(name, hidden, reduce, Path(tmp)))
                    r = rows[-1]
                    print(f"{name} {hidden} {reduce}: valid {r['valid_loss']:.4f} test {r['test_loss']:.4f} "
                          f"({r['wall_s']} s)", flush=True)
        update_results(OUT, name, {"rows": rows, "threads": 1, "how": "prune_units alone (magnitude, round_to 16, "
                                   "re-fit on), one shot, whole valid / test split, batch 1"})


if __name__ == "__main__":
    main()
