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
