"""The early_exit stage's report line names the metric its selection ranked (the exits' loss),
not the table's accuracy (issue 25: "valid accuracy 1.9745 before, best 0.0121")."""

from __future__ import annotations

import torch

from rnnslim.models.sequence import SequenceModel
from rnnslim.pipeline.stage import StageContext, get_stage
from rnnslim.report.markdown import finetune_line


def test_early_exit_report_labels_the_exit_loss(tiny_classify_task, tmp_path):
    task = tiny_classify_task(train=90, test=30)
    torch.manual_seed(0)
    model = SequenceModel(task.model_spec(hidden_size=8, num_layers=3))  # exits after layers 1 and 2
    model.task_meta = task.meta()
    cls, run = get_stage("early_exit")
    ctx = StageContext(task=task, work_dir=tmp_path / "work", progress=False, seed=1)
    run(model.eval(), cls(max_steps=4, batch_size=16, train_mode="heads"), ctx)
    assert ctx.record["metric"] == "exit_loss"
    line = finetune_line(ctx.record, "accuracy")
    assert "valid exit_loss" in line and "valid accuracy" not in line
    assert "selected by the exits' weighted validation loss" in line


def test_plain_finetune_line_keeps_the_table_metric():
    rec = {"steps": 5, "evaluations": 2, "kept_input": False, "input_valid": 0.5, "best_valid": 0.75,
           "best_step": 5, "metric": "accuracy"}
    line = finetune_line(rec, "accuracy")
    assert "valid accuracy 0.5" in line and "the same loss as the table above" in line
