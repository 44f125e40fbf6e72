"""The fine-tuning every training stage runs: rnnslim.train.finetune_ kept on the stored form.

Stages that fine-tune (`finetune`, the prune stages with `finetune_steps`, `qat`, the
transform stages) call projected_finetune, never finetune_ directly, so no stage lets DCT /
block-circulant weights drift from what save_model stores. It lives here, next to the stage
contract, rather than in rnnslim.train: the projection belongs to rnnslim.transform, a
technique above the training package (transform -> prune -> train), and a stage file no
longer imports a sibling stage to get it.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from rnnslim.pipeline.stage import StageContext
from rnnslim.train.finetune import FinetuneFields, finetune_
from rnnslim.transform import projection_hook


def mask_hooks(model: nn.Module, masks: dict | None = None) -> tuple[list, int]:
    """after_step hooks that keep pruned weights at zero, and the number of masked tensors:
    `masks` (name -> bool tensor, a prune stage's own) or, when None, the model's marked ones
    (rnnslim.prune.masks.masks_from_model).

    Passing the model attaches gradient hooks too, so pruned weights never reach gradient
    clipping or the optimizer's moments.
    """
    from rnnslim.prune.masks import mask_hook, masks_from_model

    masks = masks_from_model(model) if masks is None else masks
    if not masks:
        return [], 0
    return [mask_hook(masks, model)], len(masks)


def masked_finetune(model: nn.Module, cfg: FinetuneFields, steps: int, ctx: StageContext, subdir: str,
                    masks: dict | None = None) -> dict:
    """projected_finetune with pruning masks held (mask_hooks: `masks`, else the model's marked
    ones); the record gains `masked_tensors`. The gradient hooks are removed afterwards, failure or not."""
    after_step, n_masked = mask_hooks(model, masks)
    try:
        record = projected_finetune(model, cfg, steps, ctx, subdir, after_step=after_step)
    finally:
        for h in after_step:  # MaskHook registers gradient hooks on the parameters; do not leave them behind
            getattr(h, "remove", lambda: None)()
    return {**record, "masked_tensors": n_masked}


def projected_finetune(model: nn.Module, cfg: FinetuneFields, steps: int, ctx: StageContext, subdir: str,
                       after_step: Sequence = ()) -> dict:
    """Fine-tune (with `after_step` hooks, e.g. masks) keeping transform-coded weights in their
    subspace: projected after every step, then put exactly on their stored form. The record of
    the run (with `projected_tensors`)."""
    hook = projection_hook(model)
    record = finetune_(model, cfg, steps, ctx, subdir, after_step=list(after_step) + ([hook] if hook else []))
    if hook:
        hook.finalize(model)
    return {**record, "projected_tensors": len(hook) if hook else 0}
