"""Training and fine-tuning: one loop, its checkpoints, its selection, fine-tuning, distillation, DDP.

    result = train(model, task, TrainConfig(epochs=2, lr=2e-3), checkpoint_dir="runs/x")
    load_best(model, result)   # never worse on validation than the model train() got

Files, from the bottom up (each imports only the ones above it):

    checkpoint.py     RunState; `checkpoint_dir/last` + trainer_state.pt (exact resume)
    best.py           BestKeeper: the input model is the first candidate; TrainingDiverged
    ddp.py            several processes: the global batch split among ranks (torchrun)
    loop.py           TrainConfig, TrainHooks, TrainResult, train(), load_best()
    distill.py        kd_loss, DistillLoss (a TrainHooks.replace_loss)
    finetune_small.py the rule for small classification sets (epochs, eval per epoch, patience)
    finetune.py       FinetuneFields (what every stage that trains inherits) and finetune_()

The pipeline's stages reach this package through finetune_ (via
rnnslim.pipeline.finetuning.projected_finetune, which keeps transform-coded weights in their
subspace) or, for a stage's own loop (AGP, QAT, early exits), through train().

Where a fine-tuning `lr` goes, top to bottom (recipe field -> optimizer):

    1. finetune.py:FinetuneFields.lr            the stage's field (default 5e-4, at most LR_MAX)
    2. finetune.py:finetune_                    calls cfg.train_config(steps, seed, device)
    3. finetune.py:FinetuneFields.train_config  copies lr into TrainConfig.lr (with warm-up, eval)
    4. finetune_small.py:small_set_plan         may change eval_every / patience, never lr
    5. loop.py:train                            builds _Loop(model, task, cfg, ...)
    6. loop.py:_Loop.__init__ -> _make_optimizer   AdamW / SGD created with lr=cfg.lr
    7. loop.py:_Loop.step                       every step sets lr = cfg.lr * _lr_factor(cfg, step, total)
    8. loop.py:_lr_factor                       warm-up, then the schedule (cosine to 1 %, linear, ...)

`from rnnslim.train import ...` gives the loop's names and the fine-tuning / distillation
entry points; the other names live in their modules (rnnslim.train.ddp, .best, ...).
"""

from __future__ import annotations

from rnnslim.train.best import TrainingDiverged
from rnnslim.train.distill import DistillLoss, kd_loss
from rnnslim.train.finetune import FinetuneFields, finetune_
from rnnslim.train.loop import CLIP_GRAD_MAX, LR_MAX, MOMENTUM_MAX, WEIGHT_DECAY_MAX, OptimizerKind, ScheduleKind
from rnnslim.train.loop import TrainConfig, TrainHooks, TrainResult, load_best, steps_per_epoch, total_steps, train

__all__ = ["CLIP_GRAD_MAX", "LR_MAX", "MOMENTUM_MAX", "WEIGHT_DECAY_MAX", "DistillLoss", "FinetuneFields",
           "OptimizerKind", "ScheduleKind", "TrainConfig", "TrainHooks", "TrainResult", "TrainingDiverged",
           "finetune_", "kd_loss", "load_best", "steps_per_epoch", "total_steps", "train"]
