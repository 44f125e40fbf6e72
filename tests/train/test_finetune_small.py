"""Fine-tuning on small classification sets (issue 25): at least 30 epochs, one evaluation per
epoch, early stopping on the selection (ties: validation loss); language models unchanged."""

from __future__ import annotations

import torch
from classify_data import make_sequences, write_long_csv

from rnnslim.models.sequence import SequenceModel
from rnnslim.pipeline.stage import StageContext, parse_stage
from rnnslim.tasks.charlm import CharLMTask
from rnnslim.tasks.classify import ClassifyTask
from rnnslim.train import TrainConfig, steps_per_epoch, train
from rnnslim.train.finetune import FinetuneFields, finetune_
from rnnslim.train.finetune_small import MIN_EPOCHS, PATIENCE_EPOCHS, small_set_plan


def _task(tmp_path, n=40):
    write_long_csv(tmp_path / "train.csv", make_sequences(n, 1))
    write_long_csv(tmp_path / "test.csv", make_sequences(10, 2), seed=1)
    return ClassifyTask(tmp_path / "train.csv", test=tmp_path / "test.csv")


def test_small_classification_set_gets_epochs_evaluation_and_patience(tmp_path):
    task = _task(tmp_path)
    fields = FinetuneFields(batch_size=8)
    per_epoch = steps_per_epoch(task, 8, 64)
    assert per_epoch > 1
    tcfg, rec = small_set_plan(task, fields, fields.train_config(200, 0, "cpu"))
    assert tcfg.max_steps == 200  # a budget the recipe gives is kept
    assert tcfg.eval_every == per_epoch and tcfg.patience == max(PATIENCE_EPOCHS, 200 // per_epoch // 4)
    assert rec["train_sequences"] == task.evaluated_count("train")
    mine = FinetuneFields(batch_size=8, eval_every=3, patience=4)  # what a recipe sets explicitly wins
    tcfg, _ = small_set_plan(task, mine, mine.train_config(1000, 0, "cpu"))
    assert (tcfg.max_steps, tcfg.eval_every, tcfg.patience) == (1000, 3, 4)
    stage = parse_stage({"kind": "finetune", "batch_size": 8})  # no budget: 30 epochs, not 1
    assert stage.total_steps(task) == MIN_EPOCHS * per_epoch
    assert parse_stage({"kind": "finetune", "batch_size": 8, "epochs": 2}).total_steps(task) == 2 * per_epoch


def test_language_models_keep_the_step_budget():
    task = CharLMTask(text="abcdefgh " * 300)
    fields = FinetuneFields()
    tcfg = fields.train_config(20, 0, "cpu")
    assert small_set_plan(task, fields, tcfg) == (tcfg, None)
    assert parse_stage({"kind": "finetune"}).total_steps(task) == steps_per_epoch(task, 32, 64)  # one epoch


class _Worsening(ClassifyTask):
    """Validation loss rises at every evaluation after the first (accuracy flat): training stalls at once."""

    calls = 0

    def evaluate(self, model, split="valid", max_steps=None):
        type(self).calls += 1
        return {"loss": 1.0 + 0.01 * self.calls, "accuracy": 0.5, "sequences": 8}


def test_patience_stops_when_the_selection_stalls(tmp_path):
    _task(tmp_path)
    task = _Worsening(tmp_path / "train.csv", test=tmp_path / "test.csv")
    torch.manual_seed(0)
    model = SequenceModel(task.model_spec(hidden_size=8, num_layers=1))
    cfg = TrainConfig(max_steps=50, batch_size=8, eval_every=1, patience=3, seed=0)
    result = train(model, task, cfg, progress=False)
    assert result.steps == 3 and [h["best"] for h in result.history] == [True, False, False, False]
    assert train(model, task, cfg.model_copy(update={"patience": None}), progress=False).steps == 50


def test_finetune_records_the_small_set_rule(tmp_path):
    task = _task(tmp_path)
    torch.manual_seed(0)
    model = SequenceModel(task.model_spec(hidden_size=8, num_layers=1))
    ctx = StageContext(task=task, work_dir=tmp_path / "work", progress=False, seed=0)
    rec = finetune_(model, FinetuneFields(batch_size=8), 2 * steps_per_epoch(task, 8, 64), ctx)
    assert rec["small_set"]["eval_every"] == steps_per_epoch(task, 8, 64) and rec["evaluations"] == 3
