"""Gradual AGP pruning inside fine-tuning: follows the schedule, ends at the target, masks hold."""

import pytest
import torch

from rnnslim.models.sequence import SequenceModel
from rnnslim.prune.gradual import GradualPruning, prune_gradual_
from rnnslim.prune.schedules import AGPSchedule
from rnnslim.tasks.charlm import CharLMTask
from rnnslim.train import TrainConfig

TEXT = ("the quick brown fox jumps over the lazy dog. " * 30 + "pack my box with five dozen liquor jugs! " * 30)


def _setup(cell="lstm"):
    task = CharLMTask(text=TEXT)
    torch.manual_seed(0)
    return task, SequenceModel(task.model_spec(cell=cell, hidden_size=16, num_layers=2))


@pytest.mark.parametrize("cell,criterion", [("lstm", "magnitude"), ("gru", "taylor")])
def test_agp_reaches_the_final_sparsity_monotonically(cell, criterion):
    task, model = _setup(cell)
    sched = AGPSchedule(initial_sparsity=0.2, final_sparsity=0.8, start_step=0, end_step=12, frequency=4)
    cfg = GradualPruning(schedule=sched, criterion=criterion, calibration_batches=2,
                         train=TrainConfig(max_steps=16, batch_size=4, seq_len=16, lr=5e-3, eval_max_steps=50))
    res = prune_gradual_(model, task, cfg)
    pts = res.report["method"]["points"]
    assert [p["step"] for p in pts] == [0, 4, 8, 12]
    assert [round(p["scheduled"], 4) for p in pts] == [round(sched.sparsity_at(t), 4) for t in (0, 4, 8, 12)]
    achieved = [p["achieved"] for p in pts]
    assert all(b > a for a, b in zip(achieved, achieved[1:]))
    for name, r in res.report["tensors"].items():
        assert r["sparsity"] == pytest.approx(0.8, abs=1e-3)
        assert torch.equal(model.get_parameter(name) != 0, res.masks[name])
    assert res.train.steps == 16


def test_agp_with_blocks():
    task, model = _setup()
    cfg = GradualPruning(schedule=AGPSchedule(final_sparsity=0.5, end_step=6, frequency=3), block_rows=4, block_cols=4,
                         train=TrainConfig(max_steps=6, batch_size=4, seq_len=16, eval_max_steps=20))
    res = prune_gradual_(model, task, cfg)
    for name in res.masks:
        w = model.get_parameter(name).detach()
        R, C = w.shape
        tiles = (w != 0).view(R // 4, 4, C // 4, 4).permute(0, 2, 1, 3).reshape(-1, 16)
        assert torch.all(tiles.all(1) | (~tiles).all(1))
        assert res.report["tensors"][name]["sparsity"] == pytest.approx(0.5, abs=0.02)


def test_schedule_longer_than_training_is_refused():
    task, model = _setup()
    with pytest.raises(ValueError, match="before the schedule reaches"):
        GradualPruning(schedule=AGPSchedule(final_sparsity=0.5, end_step=50), train=TrainConfig(max_steps=10))
    cfg = GradualPruning(schedule=AGPSchedule(final_sparsity=0.5, end_step=10_000),
                         train=TrainConfig(batch_size=4, seq_len=16))
    with pytest.raises(ValueError, match="fewer than the schedule's end_step"):
        prune_gradual_(model, task, cfg)


class _Interrupt(Exception):
    pass


def _train_with(extra_hook):
    import rnnslim.prune.gradual as gradual

    real = gradual.train

    def patched(*args, hooks=None, **kw):
        hooks.after_step.append(extra_hook)
        return real(*args, hooks=hooks, **kw)

    return patched


def test_resumed_agp_run_keeps_the_newer_zeros(tmp_path, monkeypatch):
    import rnnslim.prune.gradual as gradual

    sched = AGPSchedule(final_sparsity=0.8, end_step=12, frequency=4)
    cfg = GradualPruning(schedule=sched, train=TrainConfig(max_steps=16, batch_size=4, seq_len=16, eval_max_steps=20,
                                                           checkpoint_every=5))

    def crash(m, step):
        if step == 7:  # after the checkpoint at step 5, which holds the zeros of the point at step 4
            raise _Interrupt

    task, model = _setup()
    with monkeypatch.context() as mp:
        mp.setattr(gradual, "train", _train_with(crash))
        with pytest.raises(_Interrupt):
            prune_gradual_(model, task, cfg, checkpoint_dir=tmp_path)

    seen = []

    def check(m, step):  # steps 6, 7: no schedule point, the checkpoint's zeros must hold
        if step in (6, 7):
            for name in ("rnn.layers.0.weight_hh_l0", "rnn.layers.1.weight_ih_l0"):
                w = m.get_parameter(name)
                assert (w == 0).float().mean() >= sched.sparsity_at(4) - 1e-3
            seen.append(step)

    task, fresh = _setup()
    monkeypatch.setattr(gradual, "train", _train_with(check))
    res = prune_gradual_(fresh, task, cfg, checkpoint_dir=tmp_path)  # resumes from step 5
    assert seen == [6, 7] and res.train.steps == 16
    assert [p["step"] for p in res.report["method"]["points"]] == [8, 12]  # 0 and 4 were before the checkpoint
    for name, r in res.report["tensors"].items():
        assert r["sparsity"] == pytest.approx(0.8, abs=1e-3)
