"""Students of users' own modules: a narrower copy of the same class, units chosen by
magnitude (or drawn anew), saved and re-created through save_edited / load_edited."""

from __future__ import annotations

import warnings

import pytest
import torch
from user_models import USER_MODELS, WordLM, train_briefly

from rnnslim.prune import load_edited, save_edited  # noqa: E402
from rnnslim.students import StudentSpec, make_student  # noqa: E402
from rnnslim.train.distill import kd_loss  # noqa: E402


def test_a_word_lm_student_is_its_own_class_narrower_and_trains_by_distillation(tmp_path):
    teacher = train_briefly(USER_MODELS["word LM, LSTM"], steps=30)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    x = torch.randint(0, 50, (12, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing left to warn about: nhid followed the cut
        student = make_student(teacher, StudentSpec(hidden_size=16), example_inputs=(x,))
    assert type(student) is WordLM and student.rnn.hidden_size == 16 and teacher.rnn.hidden_size == 32
    assert student.nhid == 16 and teacher.nhid == 32  # init_hidden reads it: updated in the student only
    assert student.init_hidden(4)[0].shape == (2, 4, 16) and student.history[-1]["stale_attributes"] == []
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())  # the teacher is untouched
    assert student.history[-1]["op"] == "student" and student.history[-1]["params"] < sum(
        p.numel() for p in teacher.parameters())
    # teacher init: the student's decoder columns are the teacher's, for the kept units
    keep = [r for r in student.history if r.get("op") == "prune_units"][0]["keep"]
    last = list(keep.values())[-1]
    assert torch.equal(student.decoder.weight, teacher.decoder.weight[:, last])
    # one distillation step of the user's own loop
    opt = torch.optim.SGD(student.parameters(), lr=0.1)
    with torch.no_grad():
        t_logits = teacher(x)[0]
    loss = kd_loss(student(x)[0], t_logits, 2.0)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    save_edited(student, tmp_path / "s")
    back = load_edited(WordLM("LSTM"), tmp_path / "s", example_inputs=(x,))
    torch.testing.assert_close(back(x)[0], student(x)[0], rtol=0, atol=0)


def test_random_init_and_per_layer_widths():
    spec = USER_MODELS["bidirectional GRU tagger"]
    teacher = spec.make()
    x = torch.randint(0, 40, (3, 9))
    s = make_student(teacher, StudentSpec(hidden_sizes=[16, 16], init="random"), example_inputs=(x,))
    assert s.rnn.hidden_size == 16 and s.out.in_features == 32 and s(x).shape == (3, 9, 7)
    kept = [r for r in s.history if r.get("op") == "prune_units"][0]["keep"]
    cols = list(kept.values())[-1]
    assert not torch.equal(s.out.weight[:, :16], teacher.out.weight[:, cols])  # drawn anew


def test_what_a_users_module_cannot_change_is_refused_and_the_teacher_kept():
    teacher = WordLM("GRU")
    state = {k: v.clone() for k, v in teacher.state_dict().items()}
    x = torch.randint(0, 50, (5, 2))
    with pytest.raises(ValueError, match="keeps its code.*cell"):
        make_student(teacher, StudentSpec(hidden_size=16, cell="lstm"), example_inputs=(x,))
    with pytest.raises(ValueError, match="no wider than its teacher"):
        make_student(teacher, StudentSpec(hidden_size=64), example_inputs=(x,))
    with pytest.raises(ValueError, match="2 recurrent layers"):
        make_student(teacher, StudentSpec(hidden_sizes=[8, 8, 8]), example_inputs=(x,))
    with pytest.raises(ValueError, match="over max_params"):
        make_student(teacher, StudentSpec(hidden_size=30, max_params=100), example_inputs=(x,))
    assert all(torch.equal(state[k], v) for k, v in teacher.state_dict().items())
