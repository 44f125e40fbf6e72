"""The fine-tuning rule for small classification sets (issue 25).

A step budget that suits a language model (thousands of windows per epoch) means something
else on 32 training sequences: one epoch is a single batch, and five evaluations leave the
selection almost nothing to choose from. For a classification task with fewer than
SMALL_TRAIN_SEQUENCES training sequences:

- the `finetune` stage without a step budget (no max_steps, no epochs) runs MIN_EPOCHS
  passes over the training split instead of one (`default_epochs`); a budget the recipe
  gives is kept as given;
- fine-tuning (rnnslim.train.finetune.finetune_) evaluates once per epoch (unless the stage sets
  eval_every), so the kept candidate is chosen among many, ties on accuracy broken by
  validation loss (rnnslim.train.best);
- it stops early after a quarter of its evaluations (at least PATIENCE_EPOCHS) that do not
  lower the validation loss (unless the stage sets `patience`): the loss, not the accuracy
  of a few sequences, which flips between two values and would stop a recovering model.

The stage record carries what was applied under `small_set`.
"""

from __future__ import annotations

SMALL_TRAIN_SEQUENCES = 1000
MIN_EPOCHS = 30
PATIENCE_EPOCHS = 10


def is_small_classification(task) -> bool:
    return getattr(task, "name", None) == "classify" and task.evaluated_count("train") < SMALL_TRAIN_SEQUENCES


def default_epochs(task) -> int:
    """Passes over the training split of a fine-tuning stage given no step budget."""
    return MIN_EPOCHS if is_small_classification(task) else 1


def small_set_plan(task, fields, tcfg):
    """(TrainConfig with the rule applied, record) for a small classification set; (tcfg, None) otherwise.
    `fields`: the stage's FinetuneFields (what the user set explicitly wins)."""
    from rnnslim.train.loop import steps_per_epoch

    if not is_small_classification(task):
        return tcfg, None
    per_epoch = steps_per_epoch(task, tcfg.batch_size, tcfg.seq_len)
    update = {}
    if fields.eval_every is None:
        update["eval_every"] = per_epoch
    if fields.patience is None:  # a quarter of the run, at least PATIENCE_EPOCHS: the loss of 8 sequences is noisy
        evaluations = tcfg.max_steps // update.get("eval_every", tcfg.eval_every or per_epoch)
        update["patience"] = max(PATIENCE_EPOCHS, evaluations // 4)
    record = {"train_sequences": task.evaluated_count("train"), "steps_per_epoch": per_epoch,
              "eval_every": update.get("eval_every", tcfg.eval_every), "patience": update.get("patience", tcfg.patience)}
    return tcfg.model_copy(update=update), record
