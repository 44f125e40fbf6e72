"""The training loop: learns, is deterministic, resumes after an interruption, stops on NaN."""

import pytest
import torch

from rnnslim.io.format import load_model
from rnnslim.models.sequence import SequenceModel
from rnnslim.tasks.charlm import CharLMTask
from rnnslim.train import TrainConfig, TrainHooks, TrainingDiverged, train

TEXT = ("the quick brown fox jumps over the lazy dog. " * 40 + "pack my box with five dozen liquor jugs! " * 40)


def _setup(seed=0):
    task = CharLMTask(text=TEXT)
    torch.manual_seed(seed)
    model = SequenceModel(task.model_spec(cell="lstm", hidden_size=24, num_layers=2))
    model.task_meta = task.meta()
    return task, model


CFG = TrainConfig(epochs=3, batch_size=8, seq_len=16, lr=5e-3, checkpoint_every=5, seed=3)


def test_training_lowers_loss_and_keeps_best(tmp_path):
    task, model = _setup()
    before = task.evaluate(model, "valid")["loss"]
    result = train(model, task, CFG, checkpoint_dir=tmp_path, progress=False)
    assert result.best_metric < before - 0.5
    best = load_model(tmp_path / "best")
    assert abs(task.evaluate(best, "valid")["loss"] - result.best_metric) < 1e-6
    assert len(result.history) == 3


class _Interrupt(Exception):
    pass


def test_resume_after_interruption_equals_uninterrupted(tmp_path):
    task, model_a = _setup()
    result_a = train(model_a, task, CFG, checkpoint_dir=tmp_path / "a", progress=False)

    task, model_b = _setup()
    calls = {"n": 0}

    def crash(model, step):
        calls["n"] += 1
        if step == 17:  # after the checkpoint at step 15, mid-epoch
            raise _Interrupt

    with pytest.raises(_Interrupt):
        train(model_b, task, CFG, checkpoint_dir=tmp_path / "b", hooks=TrainHooks(after_step=[crash]), progress=False)
    task, model_c = _setup(seed=99)  # a fresh process would start from different weights
    result = train(model_c, task, CFG, checkpoint_dir=tmp_path / "b", progress=False)
    assert result.steps == result_a.steps > 17
    assert result.history == result_a.history
    for (n, p), q in zip(model_a.state_dict().items(), model_c.state_dict().values()):
        assert torch.allclose(p, q, atol=1e-6), n


def test_nan_raises_and_keeps_checkpoints(tmp_path):
    task, model = _setup()

    def poison(model, batch, outputs):
        return outputs.sum() * float("nan") if poison.step >= 12 else outputs.sum() * 0

    poison.step = 0

    def count(model, step):
        poison.step = step

    cfg = CFG.model_copy(update={"checkpoint_every": 10})
    with pytest.raises(TrainingDiverged, match="loss became nan at step 12"):
        train(model, task, cfg, checkpoint_dir=tmp_path, hooks=TrainHooks(after_step=[count], extra_loss=[poison]),
              progress=False)
    last = load_model(tmp_path / "last")
    assert all(torch.isfinite(p).all() for p in last.parameters())


def test_after_step_hook_runs_every_step():
    task, model = _setup()
    steps = []
    train(model, task, CFG.model_copy(update={"max_steps": 7}), hooks=TrainHooks(after_step=[lambda m, s: steps.append(s)]),
          progress=False)
    assert steps == list(range(1, 8))


def test_config_validation():
    with pytest.raises(ValueError):
        TrainConfig(lr=-1)
    with pytest.raises(ValueError):
        TrainConfig(optimizer="adam-ish")
