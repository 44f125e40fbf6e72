"""Size before cost: a trial's artifact bytes, known before any re-fit or fine-tune.

    predicted = predict_bytes(model, task, recipe)    # int, bytes of the trial's final model

A trial's bytes follow from its shapes and bit widths, not from its weights' values, so the
search learns them first and spends a fine-tune only on trials that can fit the byte cap
(trial.run_trial: over the cap = pruned in the time of this call, with its predicted byte
excess as the sampler's constraint value).

How: the recipe's stages run on a private copy of the model with everything that only moves
values left out (finetune stages skipped, prune_units without its least-squares re-fit), and
the result is saved with the same save_model and counted with the same artifact_bytes as the
pipeline's final model. The manifest's history gets the entries the pipeline writes (stage,
index, recipe name, the real stage config, the real hash chain); the only bytes that can
differ are the stages' `record` texts (numbers the stages measured while running: a skipped
fine-tune writes none here), tens to hundreds of bytes against the whole artifact.
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

import torch

VALUE_ONLY_KINDS = ("finetune",)  # stages that change weights' values, never shapes or storage


def skeleton_config(cfg):
    """The stage config that builds the same shapes and storage without the value-only work."""
    if cfg.kind == "prune_units" and getattr(cfg, "refit", False):
        return cfg.model_copy(update={"refit": False})
    return cfg


def predict_bytes(model, task: Any, recipe, keep: Path | None = None) -> int:
    """Artifact bytes of `recipe` (an rnnslim.pipeline.recipe.Recipe) run on `model`, from the
    skeleton described in the module docstring; `model` itself is only read. `keep`: save the
    skeleton there too (to look at it); by default it lives in a temporary directory."""
    from rnnslim.io.format import artifact_bytes, save_model
    from rnnslim.pipeline.fingerprint import input_hash, jsonable, stage_hash
    from rnnslim.pipeline.stage import StageContext, get_stage

    current = copy.deepcopy(model).cpu().eval()
    prev = input_hash(current, task, recipe.seed)
    with tempfile.TemporaryDirectory(prefix="rnnslim-size-") as tmp:
        for index, cfg in enumerate(recipe.stages, start=1):
            config = cfg.model_dump(mode="json")
            prev = stage_hash({"kind": cfg.kind, **cfg.model_dump(mode="json", exclude_defaults=True)}, prev)
            record: dict = {}
            if cfg.kind not in VALUE_ONLY_KINDS:
                ctx = StageContext(task=task, work_dir=Path(tmp) / f"stage{index}", seed=recipe.seed + index,
                                   progress=False)
                ctx.work_dir.mkdir(parents=True, exist_ok=True)
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(ctx.seed)
                    current = get_stage(cfg.kind)[1](current, skeleton_config(cfg), ctx)
                record = jsonable(ctx.record)
            current.history = list(getattr(current, "history", None) or []) + [
                {"stage": cfg.kind, "index": index, "recipe": recipe.name, "config": config, "hash": prev,
                 "record": record}]  # as the pipeline's runner writes it
        return artifact_bytes(save_model(current, keep if keep is not None else Path(tmp) / "model"))
