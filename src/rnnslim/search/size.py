"""Size before cost: a trial's artifact bytes, known before any re-fit or fine-tune.

    predicted = predict_bytes(model, task, recipe)    # int, bytes of the trial's final model

A trial's bytes follow from its shapes and bit widths, not from its weights' values, so the
search learns them first and spends a fine-tune only on trials that can fit the byte cap
(trial.run_trial: over the cap = pruned in the time of this call, with its predicted byte
excess as the sampler's constraint value).

How: the recipe's stages run on a private copy of the model with everything that only moves
values left out (finetune stages skipped, QAT of already quantized layers without training,
prune_units without its least-squares re-fit), and
the result is saved with the same save_model and counted with the same artifact_bytes as the
pipeline's final model. The manifest's history gets the entries the pipeline writes (stage,
index, recipe name, the real stage config, the real hash chain); the only bytes that can
differ are the stages' `record` texts (numbers the stages measured while running: a skipped
fine-tune writes none here), tens to hundreds of bytes against the whole artifact.

Stages whose storage follows from a cheaper stand-in run as that stand-in (SKELETON_STANDINS):
unstructured second-order pruning (prune_obs) as magnitude pruning at the same sparsity, targets
and scope (the same number of zeros per tensor, so the same sparse storage), other prune_obs
patterns with one calibration batch, GPTQ as round-to-nearest in the same format (the same code
and scale layout). Where the artifact holds entropy-coded (lzma) tensors, their size depends on
the values, which the fine-tune and the stand-ins change: the prediction is then an upper bound,
the skeleton's bytes plus ENTROPY_SLACK of its lzma-coded bytes (tests/search/test_size.py
checks it against the finished model).
"""

from __future__ import annotations

import copy
import math
import tempfile
from pathlib import Path
from typing import Any

import torch

VALUE_ONLY_KINDS = ("finetune",)  # stages that change weights' values, never shapes or storage
ENTROPY_SLACK = 0.10  # lzma-coded bytes may grow this much between the skeleton and the real run
GPTQ_AS_RTN = ("bits", "group_size", "symmetric", "clip", "scale_dtype", "entropy_coding", "targets")


def skeleton_config(cfg):
    """(stage kind, config) that builds the same shapes and storage without the value-only work."""
    from rnnslim.pipeline.stage import get_stage

    if cfg.kind == "prune_units" and getattr(cfg, "refit", False):
        return cfg.kind, cfg.model_copy(update={"refit": False})
    if cfg.kind == "prune_obs" and cfg.pattern.value == "unstructured" and "prune" in _kinds():
        fields = {"sparsity": cfg.sparsity, "scope": cfg.scope, "targets": cfg.targets, "layers": cfg.layers,
                  "storage": cfg.storage}
        return "prune", get_stage("prune")[0](**fields)
    if cfg.kind == "prune_obs":
        return cfg.kind, cfg.model_copy(update={"calibration_batches": 1})
    if cfg.kind == "qat" and "quantize_weights" in _kinds():  # the same codes layout, no training
        from rnnslim.search.fidelity import ptq_of

        stand_in = ptq_of(cfg.model_dump(mode="json"))
        return "quantize_weights", get_stage("quantize_weights")[0].model_validate(stand_in)
    if cfg.kind == "quantize_gptq" and "quantize_weights" in _kinds():
        return "quantize_weights", get_stage("quantize_weights")[0](**{k: getattr(cfg, k) for k in GPTQ_AS_RTN})
    return cfg.kind, cfg


def _qat_on_quantized(cfg, model) -> bool:
    """QAT of layers already quantized trains on their frozen grid and converts to the same layout
    (rnnslim.quantize.qat): only its values change."""
    if cfg.kind != "qat":
        return False
    from rnnslim.quantize.targets import find_targets

    return not find_targets(model, cfg.targets)


def _untrained_qat(model, cfg):
    """A qat stage's prepare + convert with no step between: the stored layout and the history
    entries the real stage writes (its training record aside)."""
    from rnnslim.quantize.api import QATStep, quantize_

    quantize_(model, cfg.qat_config(QATStep.PREPARE))
    return quantize_(model, cfg.qat_config(QATStep.CONVERT))


def _kinds() -> set[str]:
    from rnnslim.pipeline.stage import stage_kinds

    return set(stage_kinds())


def entropy_coded_bytes(model_dir: Path) -> int:
    """Bytes the saved model's lzma-coded tensors take in its weights file."""
    import json

    from safetensors import safe_open

    from rnnslim.io.format import resolve_model_path

    manifest, weights = resolve_model_path(model_dir)
    coded = [k for k, v in json.loads(manifest.read_text()).get("tensors", {}).items() if v.get("encoding") == "lzma"]
    if not coded:
        return 0
    total = 0
    with safe_open(str(weights), "pt") as f:
        for key in f.keys():  # noqa: SIM118 - a safetensors handle, not a dict
            if any(key == c or key.startswith(c + ".") for c in coded):
                t = f.get_slice(key)
                n = 1
                for d in t.get_shape():
                    n *= d
                total += n  # lzma parts are uint8
    return total


def predict_bytes(model, task: Any, recipe, keep: Path | None = None) -> int:
    """Artifact bytes of `recipe` (an rnnslim.pipeline.recipe.Recipe) run on `model`, from the
    skeleton described in the module docstring (an upper bound where lzma codes); `model`
    itself is only read. `keep`: save the skeleton there too (to look at it); by default it
    lives in a temporary directory."""
    return predict_bytes_bounds(model, task, recipe, keep)[1]


def predict_bytes_bounds(model, task: Any, recipe, keep: Path | None = None) -> tuple[int, int]:
    """(estimate, upper bound) of the artifact bytes: the skeleton's own bytes, and those plus
    ENTROPY_SLACK of its lzma-coded bytes (equal when nothing is lzma-coded). The search prunes a
    trial when even the estimate is over the byte cap (it cannot fit), and records both."""
    from rnnslim.io.format import artifact_bytes, save_model
    from rnnslim.pipeline.fingerprint import config_hash, input_hash, jsonable
    from rnnslim.pipeline.stage import StageContext, get_stage

    current = copy.deepcopy(model).cpu().eval()
    prev = input_hash(current, task, recipe.seed)
    with tempfile.TemporaryDirectory(prefix="rnnslim-size-") as tmp:
        for index, cfg in enumerate(recipe.stages, start=1):
            config = cfg.model_dump(mode="json")
            prev = config_hash(cfg, prev)
            record: dict = {}
            if _qat_on_quantized(cfg, current):  # the same layout: prepare + convert, no training
                current = _untrained_qat(current, cfg)
            elif cfg.kind not in VALUE_ONLY_KINDS:
                ctx = StageContext(task=task, work_dir=Path(tmp) / f"stage{index}", seed=recipe.seed + index,
                                   progress=False)
                ctx.work_dir.mkdir(parents=True, exist_ok=True)
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(ctx.seed)
                    kind, stand_in = skeleton_config(cfg)
                    current = get_stage(kind)[1](current, stand_in, ctx)
                record = jsonable(ctx.record)
            current.history = list(getattr(current, "history", None) or []) + [
                {"stage": cfg.kind, "index": index, "recipe": recipe.name, "config": config, "hash": prev,
                 "record": record}]  # as the pipeline's runner writes it
        saved = save_model(current, keep if keep is not None else Path(tmp) / "model")
        estimate = artifact_bytes(saved)
        return estimate, estimate + math.ceil(ENTROPY_SLACK * entropy_coded_bytes(saved))
