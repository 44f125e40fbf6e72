"""StudentSpec and make_student: the parameter formula, the task kept, bad specs refused."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rnnslim import StudentSpec, make_student
from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, Readout, SequenceModel
from rnnslim.students import count_params, student_model_spec


def _teacher(cell="lstm", kind=InputKind.EMBEDDING, hidden=24, layers=2, embed=16, out=11, readout=Readout.ALL,
             bidir=False, tie=False, proj=0):
    inp = embed if kind is InputKind.IDENTITY else 11
    torch.manual_seed(0)
    spec = ModelSpec(cell=cell, input_kind=kind, input_size=inp, embed_size=embed, output_size=out, readout=readout,
                     layers=[LayerShape(hidden_size=hidden, proj_size=proj, bidirectional=bidir)] * layers,
                     tie_weights=tie, dropout=0.2)
    m = SequenceModel(spec).eval()
    m.task_meta = {"task": "test", "vocab": list("abcdefghijk")}
    return m


SPECS = [
    dict(cell="gru", hidden_size=12),
    dict(cell="lstm", hidden_sizes=[20, 8], embed_size=6),
    dict(cell="lstm", hidden_size=16, proj_size=[8, 4], num_layers=2),
    dict(cell="rnn", hidden_size=10, num_layers=3, embed_size=12),
    dict(cell="rnn_relu", hidden_size=10, bidirectional=True),
    dict(cell="lstm", hidden_size=9, proj_size=5, bidirectional=True, num_layers=1),
]


@pytest.mark.parametrize("kind", [InputKind.EMBEDDING, InputKind.LINEAR, InputKind.IDENTITY])
@pytest.mark.parametrize("fields", SPECS)
def test_param_count_equals_the_formula(kind, fields):
    teacher = _teacher(kind=kind, readout=Readout.ALL if kind is InputKind.EMBEDDING else Readout.LAST)
    if kind is InputKind.IDENTITY:
        fields = {k: v for k, v in fields.items() if k != "embed_size"}
    student = make_student(teacher, StudentSpec(init="random", **fields))
    n = sum(p.numel() for p in student.parameters())
    assert n == count_params(student.spec) == student.history[-1]["params"]
    # the task's interface is the teacher's
    s, t = student.spec, teacher.spec
    assert (s.input_kind, s.input_size, s.output_size, s.readout) == (t.input_kind, t.input_size, t.output_size,
                                                                       t.readout)
    assert student.task_meta == teacher.task_meta and student.task_meta is not teacher.task_meta


def test_formula_by_hand_for_a_tied_lstmp_and_a_gru():
    tied = _teacher(tie=True, hidden=24, embed=16, proj=16)
    student = make_student(tied, StudentSpec(hidden_size=20, proj_size=16, init="random"))
    # V*E + layer0 4*20*(16+16) + 8*20 + 16*20 + layer1 same + decoder bias (the weight is the embedding)
    layer = 4 * 20 * (16 + 16) + 8 * 20 + 16 * 20
    assert count_params(student.spec) == 11 * 16 + 2 * layer + 11 == sum(p.numel() for p in student.parameters())
    gru = student_model_spec(_teacher().spec, StudentSpec(cell="gru", hidden_size=5, embed_size=3, num_layers=1))
    assert count_params(gru) == 11 * 3 + 3 * 5 * (3 + 5) + 6 * 5 + 11 * 5 + 11


def test_defaults_come_from_the_teacher():
    teacher = _teacher(cell="gru", bidir=True)
    student = make_student(teacher, StudentSpec(hidden_size=8))
    assert student.spec.cell is teacher.spec.cell and student.spec.embed_size == 16 and student.spec.dropout == 0.2
    assert [(s.hidden_size, s.bidirectional) for s in student.spec.layers] == [(8, True), (8, True)]


def test_over_max_params_is_an_error_and_the_teacher_is_untouched():
    teacher = _teacher()
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    need = count_params(student_model_spec(teacher.spec, StudentSpec(hidden_size=20)))
    with pytest.raises(ValueError, match=f"{need:,} parameters, over max_params {need - 1:,}"):
        make_student(teacher, StudentSpec(hidden_size=20, max_params=need - 1))
    assert make_student(teacher, StudentSpec(hidden_size=20, max_params=need)).history[-1]["params"] == need
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())


@pytest.mark.parametrize("fields, match", [
    (dict(hidden_size=8, hidden_sizes=[8]), "exactly one of hidden_sizes"),
    (dict(), "exactly one of hidden_sizes"),
    (dict(cell="gru", hidden_size=8, proj_size=4), "LSTM projection"),
    (dict(cell="tcn", hidden_size=8), "tcn"),
    (dict(hidden_sizes=[8, 8], num_layers=3), "num_layers 3"),
])
def test_bad_specs_are_refused(fields, match):
    with pytest.raises(ValueError, match=match):
        StudentSpec(**fields)


def test_specs_that_do_not_fit_the_teacher_are_refused():
    with pytest.raises(ValueError, match="proj_size must be smaller"):
        make_student(_teacher(), StudentSpec(hidden_size=8, proj_size=8))
    with pytest.raises(ValueError, match="proj_size gives 3 values for 2 layers"):
        make_student(_teacher(), StudentSpec(hidden_size=8, proj_size=[2, 2, 2]))
    with pytest.raises(ValueError, match="embed_size must stay 16"):
        make_student(_teacher(kind=InputKind.IDENTITY, readout=Readout.LAST), StudentSpec(hidden_size=8, embed_size=8))
    with pytest.raises(ValueError, match="does not fit the teacher's task"):  # tied: last layer must give E
        make_student(_teacher(tie=True, hidden=16), StudentSpec(hidden_size=12))
    with pytest.raises(TypeError, match="returns its hidden units"):
        make_student(nn.LSTM(4, 8), StudentSpec(hidden_size=4))
