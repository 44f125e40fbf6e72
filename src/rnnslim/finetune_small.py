"""The fine-tuning rule for small classification sets (issue 25).

A step budget that suits a language model (thousands of windows per epoch) means something
else on 32 training sequences: 200 steps are 200 epochs of one batch, and five evaluations
leave the selection almost nothing to choose from. For a classification task with fewer than
SMALL_TRAIN_SEQUENCES training sequences, fine-tuning (rnnslim.finetune.finetune_) therefore:

- runs at least MIN_EPOCHS passes over the training split (more steps than asked when one
  epoch is several batches),
- evaluates once per epoch (unless the stage sets eval_every), so the kept candidate is
  chosen among many, ties on accuracy broken by validation loss (rnnslim.train_best),
- stops early after a quarter of its evaluations (at least PATIENCE_EPOCHS) that do not
  lower the validation loss (unless the stage sets `patience`): the loss, not the accuracy of a few sequences, which
  flips between two values and would stop a recovering model at once.

The stage record carries what was applied under `small_set`.
"""

from __future__ import annotations

SMALL_TRAIN_SEQUENCES = 1000
MIN_EPOCHS = 30
PATIENCE_EPOCHS = 10


def small_set_plan(task, fields, tcfg):
    """(TrainConfig with the rule applied, record) for a small classification set; (tcfg, None) otherwise.
    `fields`: the stage's FinetuneFields (what the user set explicitly wins)."""
    from rnnslim.train import steps_per_epoch

    if getattr(task, "name", None) != "classify":
        return tcfg, None
    n = task.evaluated_count("train")
    if n >= SMALL_TRAIN_SEQUENCES:
        return tcfg, None
    per_epoch = steps_per_epoch(task, tcfg.batch_size, tcfg.seq_len)
    steps = max(tcfg.max_steps or 0, MIN_EPOCHS * per_epoch)
    update = {"max_steps": steps}
    if fields.warmup_steps is None:
        update["warmup_steps"] = fields.warmup_for(steps)
    if fields.eval_every is None:
        update["eval_every"] = per_epoch
    if fields.patience is None:  # a quarter of the run, at least PATIENCE_EPOCHS: the loss of 8 sequences is noisy
        evaluations = steps // update.get("eval_every", tcfg.eval_every or per_epoch)
        update["patience"] = max(PATIENCE_EPOCHS, evaluations // 4)
    record = {"train_sequences": n, "steps_per_epoch": per_epoch, "planned_steps": steps,
              "eval_every": update.get("eval_every", tcfg.eval_every), "patience": update.get("patience", tcfg.patience)}
    return tcfg.model_copy(update=update), record
