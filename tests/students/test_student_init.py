"""init: teacher copies the embedding, the decoder and (same cell) the top units the way
structured pruning would keep them; random copies nothing."""

from __future__ import annotations

import copy

import pytest
import torch

from rnnslim import StudentSpec, make_student
from rnnslim.prune.structured import StructuredPruning, prune_units_
from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, Readout, SequenceModel


def _teacher(cell="lstm", kind=InputKind.EMBEDDING, hidden=24, embed=16, readout=Readout.ALL):
    torch.manual_seed(1)
    spec = ModelSpec(cell=cell, input_kind=kind, input_size=11, embed_size=embed, output_size=7 if kind is not
                     InputKind.EMBEDDING else 11, readout=readout, layers=[LayerShape(hidden_size=hidden)] * 2)
    return SequenceModel(spec).eval()


def _x(teacher, T=9, B=3):
    g = torch.Generator().manual_seed(0)
    if teacher.spec.input_kind is InputKind.EMBEDDING:
        return torch.randint(0, teacher.spec.input_size, (T, B), generator=g)
    return torch.randn(T, B, teacher.spec.input_size, generator=g)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_same_shape_student_is_the_teacher(cell):
    teacher = _teacher(cell)
    student = make_student(teacher, StudentSpec(hidden_size=24)).eval()
    x = _x(teacher)
    assert torch.equal(student(x)[0], teacher(x)[0])
    assert student.history[-1]["recurrent_not_copied"] is None


@pytest.mark.parametrize("cell, kind", [("lstm", InputKind.EMBEDDING), ("gru", InputKind.LINEAR)])
def test_smaller_same_cell_student_equals_the_unit_pruned_teacher(cell, kind):
    """Top-magnitude units and embedding features, exactly what prune_units keeps with reduce l1 (the
    student's selection; prune_units' default is l2 since 2026-12), no re-fit."""
    teacher = _teacher(cell, kind, readout=Readout.ALL if kind is InputKind.EMBEDDING else Readout.LAST)
    pruned = copy.deepcopy(teacher)
    prune_units_(pruned, StructuredPruning(ratio=0.5, embed_ratio=0.25, reduce="l1"))
    student = make_student(teacher, StudentSpec(hidden_size=12, embed_size=12)).eval()
    assert student.spec.layers == pruned.spec.layers and student.spec.embed_size == pruned.spec.embed_size == 12
    ps = dict(pruned.named_parameters())
    for name, p in student.named_parameters():
        assert torch.equal(p, ps[name]), name
    x = _x(teacher)
    assert torch.allclose(student(x)[0], pruned(x)[0], atol=1e-6)


def test_lstm_to_gru_copies_embedding_and_decoder_bias_exactly():
    teacher = _teacher("lstm")
    student = make_student(teacher, StudentSpec(cell="gru", hidden_size=20))
    info = student.history[-1]
    assert student.spec.cell.value == "gru"
    assert info["copied"] == ["embedding.weight", "decoder.bias"]
    assert "different cell" in info["recurrent_not_copied"]
    assert torch.equal(student.embedding.weight, teacher.embedding.weight)
    assert torch.equal(student.decoder.bias, teacher.decoder.bias)
    assert student(_x(teacher))[0].shape == teacher(_x(teacher))[0].shape


def test_lstm_to_lstmp_projection_selects_kept_units():
    teacher = _teacher("lstm")
    student = make_student(teacher, StudentSpec(hidden_size=16, proj_size=6))
    pruned = copy.deepcopy(teacher)
    prune_units_(pruned, StructuredPruning(per_layer={0: 8 / 24, 1: 8 / 24}, reduce="l1"))  # the same 16 units
    for k in range(2):
        hr = student.rnn.layers[k].weight_hr_l0  # (P, H): one-hot rows on 6 distinct units
        assert hr.shape == (6, 16) and torch.equal(hr.sum(1), torch.ones(6)) and torch.equal(hr.sum(0).clamp(max=1),
                                                                                                  hr.sum(0))
        sel = hr.argmax(1)
        w_hh = pruned.rnn.layers[k].weight_hh_l0
        assert torch.equal(student.rnn.layers[k].weight_hh_l0, w_hh[:, sel])
        assert torch.equal(student.rnn.layers[k].weight_ih_l0,
                           pruned.rnn.layers[k].weight_ih_l0[:, student.rnn.layers[k - 1].weight_hr_l0.argmax(1)]
                           if k else pruned.rnn.layers[0].weight_ih_l0)
    assert torch.equal(student.decoder.weight, pruned.decoder.weight[:, student.rnn.layers[1].weight_hr_l0.argmax(1)])
    assert torch.equal(student.embedding.weight, teacher.embedding.weight)


def test_wider_or_deeper_students_get_random_recurrent_layers():
    teacher = _teacher("gru")
    wide = make_student(teacher, StudentSpec(hidden_size=32, embed_size=20))
    assert wide.history[-1]["copied"] == ["decoder.bias"] and "wider" in wide.history[-1]["recurrent_not_copied"]
    deep = make_student(teacher, StudentSpec(hidden_size=8, num_layers=3))
    assert "number of layers" in deep.history[-1]["recurrent_not_copied"]
    assert torch.equal(deep.embedding.weight, teacher.embedding.weight)


def test_random_init_copies_nothing():
    teacher = _teacher("lstm")
    student = make_student(teacher, StudentSpec(hidden_size=24, init="random"))
    assert student.history[-1]["copied"] == [] and student.history[-1]["recurrent_not_copied"] == "init: random"
    assert not torch.equal(student.embedding.weight, teacher.embedding.weight)


def test_a_quantized_teacher_needs_init_random():
    from rnnslim import Int8Config, quantize_

    teacher = _teacher("lstm")
    quantize_(teacher, Int8Config())
    with pytest.raises(ValueError, match="init: teacher needs a floating-point teacher.*init: random"):
        make_student(teacher, StudentSpec(hidden_size=8))
    student = make_student(teacher, StudentSpec(hidden_size=8, init="random"))
    assert student.embedding.weight.dtype == torch.float32 and student(_x(teacher))[0].shape[-1] == 11
