import pytest
import torch

from rnnslim.distill import DistillLoss
from rnnslim.models.sequence import SequenceModel
from rnnslim.tasks.base import Batch
from rnnslim.tasks.charlm import CharLMTask
from rnnslim.train import TrainConfig, TrainHooks, train

TEXT = "to be or not to be, that is the question. " * 60


def test_zero_for_identical_models_and_positive_otherwise():
    task = CharLMTask(text=TEXT)
    teacher = SequenceModel(task.model_spec(hidden_size=16, num_layers=1)).eval()
    batch = next(task.batches("train", 4, 8))
    loss = DistillLoss(teacher, alpha=1.0, stateful=False)
    out, _ = teacher(batch.inputs)
    assert loss(teacher, batch, out).item() == pytest.approx(0.0, abs=1e-6)
    student = SequenceModel(task.model_spec(hidden_size=8, num_layers=1))
    s_out, _ = student(batch.inputs)
    value = loss(student, batch, s_out)
    assert value.item() > 0 and value.requires_grad


def test_teacher_state_is_carried_and_reset_on_batch_change():
    task = CharLMTask(text=TEXT)
    teacher = SequenceModel(task.model_spec(hidden_size=16, num_layers=1)).eval()
    loss = DistillLoss(teacher, stateful=True)
    b = next(task.batches("train", 4, 8))
    loss._teacher_logits(b.inputs)
    assert loss._state is not None
    loss._teacher_logits(Batch(b.inputs[:, :2], b.targets[:, :2]).inputs)  # a different batch size: no stale state
    assert loss._state is not None and loss._state[0][0].shape[1] == 2


def test_distillation_moves_student_towards_teacher():
    task = CharLMTask(text=TEXT)
    torch.manual_seed(0)
    teacher = SequenceModel(task.model_spec(hidden_size=32, num_layers=1))
    train(teacher, task, TrainConfig(max_steps=60, batch_size=8, seq_len=16, lr=1e-2), progress=False)
    student = SequenceModel(task.model_spec(hidden_size=32, num_layers=1))
    batch = next(task.batches("valid", 1, 64))
    kd = DistillLoss(teacher, alpha=1.0, stateful=False)
    before = kd(student, batch, student(batch.inputs)[0]).item()
    train(student, task, TrainConfig(max_steps=30, batch_size=8, seq_len=16, lr=1e-2),
          hooks=TrainHooks(extra_loss=[DistillLoss(teacher, alpha=1.0)]), progress=False)
    assert kd(student, batch, student(batch.inputs)[0]).item() < before
