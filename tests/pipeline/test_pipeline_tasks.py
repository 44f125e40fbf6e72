"""Building the Task a recipe's `task:` section names."""

from __future__ import annotations

import pytest

from rnnslim.models.sequence import SequenceModel
from rnnslim.pipeline.recipe import RecipeError, TaskSection
from rnnslim.pipeline.tasks import build_task
from rnnslim.tasks.charlm import CharLMTask


def _model(vocab):
    task = CharLMTask(text="".join(vocab) * 50)
    m = SequenceModel(task.model_spec(hidden_size=8, num_layers=1))
    m.task_meta = task.meta()
    return m


def test_charlm_uses_the_models_vocabulary_and_relative_data(tmp_path):
    vocab = sorted("abcdefgh \n")
    (tmp_path / "d.txt").write_text("abba cafe\n" * 100)  # uses only part of the vocabulary
    task = build_task(TaskSection(name="charlm", data="d.txt", options={"max_chars": 500}), _model(vocab), tmp_path)
    assert task.vocab == vocab and len(task.ids) == 500 and task.source == str(tmp_path / "d.txt")


def test_missing_data_file(tmp_path):
    with pytest.raises(RecipeError, match="task 'charlm': .*not found"):
        build_task(TaskSection(name="charlm", data="nope.txt"), _model(list("ab\n ")), tmp_path)


def test_unknown_task_and_bad_option():
    m = _model(list("ab\n "))
    with pytest.raises(RecipeError, match="unknown task 'charlmm'; available: .*charlm"):
        build_task(TaskSection(name="charlmm"), m)
    with pytest.raises(RecipeError, match="task 'charlm': .*max_charz"):
        build_task(TaskSection(name="charlm", options={"max_charz": 10}), m)
