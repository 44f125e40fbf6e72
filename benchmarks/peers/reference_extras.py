"""rnnslim's rows beyond int8 in the peer table (issue 21), and the noise band of the test prefix.

Called by reference_outputs.py (main venv) for the char models, on the same prefix as every peer:
    gptq_rows     weight-only GPTQ int4 / int3 / int2, reconstruct_bench.py's best configuration per
                  width (`gptq` sub-command on charlstm-512x2: int4 g64 symmetric, int3 and int2 g64
                  asymmetric; MSE clip, 32 calibration batches), and int4 with one scale per output row
                  (AIMET's per-channel layout). They run in torch (dequantized weights).
    recipe_rows   (charlstm-512x2, the model they were written for) the deploy recipes (benchmarks/recipes/deploy-units384-int8.yaml, deploy-units320-int8.yaml:
                  unit pruning + fine-tune + int8 integer, run in the C kernel) and the search's best recipe
                  (search-*.yaml), read from run_recipes.py's work directories benchmarks/runs/MODEL/NAME/model;
                  a recipe not run there is a row saying how to run it (minutes of fine-tuning: never inside
                  a peer run).
    prefix_noise_band   noise_band.py's definition on the prefix: the fp32 -> weight-only int4 g64 change
                  per character, in 50 contiguous blocks, and how far two halvings disagree (first 25 vs
                  last 25 blocks; even vs odd). A loss difference within +-band is "equal".
GPTQ outputs are cached in benchmarks/runs/peers/MODEL/ (gitignored; written whole or not at all), so only
the first peer run of a model pays for them.
"""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import torch

from common import RUNS
from noise_band import BLOCKS, halves, token_nll

from rnnslim.export.c_source import export_c
from rnnslim.io.format import artifact_bytes, load_model, save_model
from rnnslim.quantize.int8 import IntegerRunner
from rnnslim.tasks.charlm import stream_nll

CACHE = RUNS / "peers"
RECIPES = Path(__file__).resolve().parents[1] / "recipes"
# (bits, symmetric, group_size): reconstruct_bench.py's best per width (g64), and int4 with one scale per
# output row (group None: the layout of AIMET's per-channel 4-bit rows, 4 % fewer bytes than g64)
GPTQ_CONFIGS = ((4, True, 64), (4, True, None), (3, False, 64), (2, False, 64))


def gptq_label(bits: int, symmetric: bool, group_size: int | None, clip: str = "mse") -> str:
    """e.g. "int4 g64 sym mse", "int4 per-row sym mse" (the row's variant is "rnnslim weight-only GPTQ " + it)."""
    group = "per-row" if group_size is None else f"g{group_size}"
    return f"int{bits} {group} {'sym' if symmetric else 'asym'} {clip}"
DEPLOY_RECIPES = ("deploy-units384-int8", "deploy-units320-int8")
RECIPE_MODELS = ("charlstm-512x2",)  # the recipes' sizes (384 / 320 of 512 units) and the search study are for it


def _cached(path: Path, make: Callable[[], torch.nn.Module]) -> tuple[torch.nn.Module, bool]:
    """load_model(path) if a previous run saved it, else make() and save it there atomically."""
    if (path / "model.json").exists():
        return load_model(path), True
    model = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    save_model(model, tmp / "m")
    try:
        os.rename(tmp / "m", path)
    except OSError:  # another peer run saved the same model first: keep that one
        pass
    shutil.rmtree(tmp, ignore_errors=True)
    return model, False


def model_row(variant: str, model, path: Path, d: torch.Tensor, latency: Callable[..., dict | None], **extra) -> dict:
    """Loss on d (the prefix, one stream), artifact bytes of the saved model at `path` and step latency:
    the C kernel for a fully integer model (with its C export's flash / RAM), torch otherwise."""
    try:
        runner = IntegerRunner(model)
    except (ValueError, TypeError, NotImplementedError):
        runner = None
    if runner is not None:
        logits, _ = runner.run(d[:-1])
        nats = float(torch.nn.functional.cross_entropy(logits.float(), d[1:]))
        with tempfile.TemporaryDirectory(prefix="peers_c_") as tmp:
            facts = export_c(model, Path(tmp) / "c", name="model")
        extra["c_export"] = {"const_bytes": facts.const_bytes, "scratch_bytes": facts.scratch_bytes,
                             "state_bytes": facts.state_bytes}
        runs_in, lat = "C kernel (IntegerRunner)", latency(step_fn=runner.stream_step_fn())
    else:
        nats, runs_in, lat = stream_nll(model, d)["loss_nats"], "torch", latency(model=model)
    print(f"{variant:55s} {nats:.4f} nats  {artifact_bytes(path):>10,} B  ({runs_in})", flush=True)
    return {"variant": variant, "test_loss_nats": nats, "bits_per_char": nats / 0.6931471805599453,
            "artifact_bytes": artifact_bytes(path), "runs_in": runs_in, "latency": lat, **extra}


def gptq_rows(name: str, base, task, d: torch.Tensor, latency, configs=GPTQ_CONFIGS) -> list[dict]:
    from rnnslim.reconstruct import GPTQ, quantize_gptq_

    rows = []
    for bits, sym, group in configs:
        cfg = GPTQ(bits=bits, symmetric=sym, group_size=group)
        label = gptq_label(bits, sym, group, cfg.clip.value)
        path = CACHE / name / f"gptq-{label.replace(' ', '-')}"

        def make(cfg=cfg):
            m = copy.deepcopy(base)
            quantize_gptq_(m, cfg, task)
            return m
        model, cached = _cached(path, make)
        rows.append(model_row(f"rnnslim weight-only GPTQ {label}", model, path, d, latency, bits=bits,
                              kind="gptq", how=f"rnnslim.reconstruct.quantize_gptq_({cfg!r}) as reconstruct_bench.py "
                              f"gptq; {cfg.calibration_batches} calibration batches of 16 x 64 training characters",
                              cached=cached, note="weight-only: runs in torch with dequantized weights; bytes: "
                              "rnnslim save_model (packed low-bit weights + scales)"))
    return rows


def recipe_names() -> list[str]:
    """The deploy recipes, then every committed search recipe."""
    return [*DEPLOY_RECIPES, *sorted(p.stem for p in RECIPES.glob("search-*.yaml"))]


def final_model_dir(name: str, recipe: str) -> Path:
    """Where a recipe's final model of `name` lies: run_recipes.py's run directory (named after the recipe's
    `name`, which is the file's stem for the deploy recipes, `search-<hash>` for a search's re-run recipe), or
    search_reproduce.py's (search-<version>-trial<N>) for the search recipes; the first that exists, else the
    file stem's."""
    import re

    import yaml

    stems = [recipe]
    path = RECIPES / f"{recipe}.yaml"
    if path.exists():
        stems.append(str(yaml.safe_load(path.read_text()).get("name", recipe)))
    m = re.fullmatch(rf"search-(v\d+)-{re.escape(name)}-trial(\d+)", recipe)
    if m:
        stems.append(f"search-{m.group(1)}-trial{m.group(2)}")
    found = [RUNS / name / s / "model" for s in stems if (RUNS / name / s / "model" / "model.json").exists()]
    return found[0] if found else RUNS / name / recipe / "model"


def recipe_rows(name: str, d: torch.Tensor, latency) -> list[dict]:
    rows = []
    for recipe in recipe_names() if name in RECIPE_MODELS else ():
        final = final_model_dir(name, recipe)
        kind = "deploy" if recipe.startswith("deploy") else "search"
        if not (final / "model.json").exists():
            rows.append({"variant": f"rnnslim recipe {recipe}", "kind": kind, "outcome": "not_run",
                         "error": f"no {final.relative_to(RUNS.parents[1])}: run `python benchmarks/run_recipes.py run "
                                  f"--model {name} --recipes benchmarks/recipes/{recipe}.yaml` first"})
            continue
        rows.append(model_row(f"rnnslim recipe {recipe}", load_model(final), final, d, latency, kind=kind,
                              recipe_file=f"benchmarks/recipes/{recipe}.yaml",
                              how=f"run_recipes.py run --model {name}: rnnslim's pipeline, final model"))
    return rows


def prefix_noise_band(base, d: torch.Tensor) -> dict:
    from rnnslim.quantize.api import WeightOnly, quantize_

    a = token_nll(base, d)
    b = token_nll(quantize_(copy.deepcopy(base), WeightOnly(bits=4, group_size=64)), d)
    h = halves(b - a)
    return {"noise_band": h["spread"], "halves": h, "blocks": BLOCKS, "characters": int(a.numel()),
            "paired_with": "weight-only int4 g64", "paired_difference": float((b - a).mean()),
            "how": "noise_band.py's definition on this prefix: the fp32 -> int4 g64 change per character in "
                   f"{BLOCKS} contiguous blocks; the larger disagreement of first/second half and even/odd blocks"}
