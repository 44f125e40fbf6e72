"""Distillation mixed with the task loss: alpha * KD + (1 - alpha) * CE, teacher once per batch."""

import pytest
import torch
from torch.nn import functional as F

from rnnslim.models.sequence import SequenceModel
from rnnslim.tasks.base import Batch
from rnnslim.tasks.charlm import CharLMTask
from rnnslim.train import TrainConfig, TrainHooks, train
from rnnslim.train.distill import DistillLoss, kd_loss

TEXT = "to be or not to be, that is the question. " * 60


def _pair(task):
    torch.manual_seed(0)
    teacher = SequenceModel(task.model_spec(hidden_size=16, num_layers=1)).eval()
    student = SequenceModel(task.model_spec(hidden_size=8, num_layers=1))
    return teacher, student


def test_kd_is_zero_for_identical_models_and_positive_otherwise():
    task = CharLMTask(text=TEXT)
    teacher, student = _pair(task)
    batch = next(task.batches("train", 4, 8))
    out, _ = teacher(batch.inputs)
    assert kd_loss(out, out, 2.0).item() == pytest.approx(0.0, abs=1e-6)
    s_out, _ = student(batch.inputs)
    value = kd_loss(s_out, out.detach(), 2.0)
    assert value.item() > 0 and value.requires_grad


def test_alpha_mixes_kd_and_the_task_loss():
    task = CharLMTask(text=TEXT)
    teacher, student = _pair(task)
    batch = next(task.batches("train", 4, 8))
    s_out, _ = student(batch.inputs)
    ce = task.loss(s_out, batch)
    with torch.no_grad():
        t_out, _ = teacher(batch.inputs)
    T = 3.0
    V = s_out.shape[-1]
    kl = F.kl_div(F.log_softmax(s_out / T, -1).reshape(-1, V), F.softmax(t_out / T, -1).reshape(-1, V),
                  reduction="batchmean")  # written out independently: KL(teacher || student) per position
    pure_kd = T**2 * kl
    mix = {a: DistillLoss(teacher, alpha=a, temperature=T, stateful=False)(student, batch, s_out, ce)
           for a in (0.0, 0.3, 1.0)}
    assert torch.equal(mix[0.0], ce)
    torch.testing.assert_close(mix[1.0], pure_kd, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(mix[0.3], 0.3 * pure_kd + 0.7 * ce, rtol=1e-5, atol=1e-6)


def test_teacher_runs_once_per_batch_without_gradients():
    task = CharLMTask(text=TEXT)
    teacher, student = _pair(task)
    calls = []
    teacher.register_forward_hook(lambda m, i, o: calls.append(torch.is_grad_enabled()))
    batch = next(task.batches("train", 4, 8))
    s_out, _ = student(batch.inputs)
    DistillLoss(teacher, alpha=0.5, stateful=False)(student, batch, s_out, task.loss(s_out, batch))
    assert calls == [False]


def test_misuse_and_bad_arguments_are_refused():
    task = CharLMTask(text=TEXT)
    teacher, student = _pair(task)
    batch = next(task.batches("train", 4, 8))
    with pytest.raises(TypeError, match="replace_loss"):
        DistillLoss(teacher)(student, batch, student(batch.inputs)[0])  # used as an extra_loss
    with pytest.raises(ValueError, match="alpha"):
        DistillLoss(teacher, alpha=1.5)


def test_teacher_state_is_carried_and_reset_on_batch_change():
    task = CharLMTask(text=TEXT)
    teacher, _ = _pair(task)
    loss = DistillLoss(teacher, stateful=True)
    b = next(task.batches("train", 4, 8))
    loss.teacher_logits(b.inputs)
    assert loss._state is not None
    loss.teacher_logits(Batch(b.inputs[:, :2], b.targets[:, :2]).inputs)  # a different batch size: no stale state
    assert loss._state is not None and loss._state[0][0].shape[1] == 2


def test_distillation_moves_student_towards_teacher():
    task = CharLMTask(text=TEXT)
    torch.manual_seed(0)
    teacher = SequenceModel(task.model_spec(hidden_size=32, num_layers=1))
    train(teacher, task, TrainConfig(max_steps=60, batch_size=8, seq_len=16, lr=1e-2), progress=False)
    student = SequenceModel(task.model_spec(hidden_size=32, num_layers=1))
    batch = next(task.batches("valid", 1, 64))
    with torch.no_grad():
        t_out = teacher(batch.inputs)[0]
        before = kd_loss(student(batch.inputs)[0], t_out, 2.0).item()
    train(student, task, TrainConfig(max_steps=30, batch_size=8, seq_len=16, lr=1e-2),
          hooks=TrainHooks(replace_loss=DistillLoss(teacher, alpha=1.0)), progress=False)
    with torch.no_grad():
        assert kd_loss(student(batch.inputs)[0], t_out, 2.0).item() < before
