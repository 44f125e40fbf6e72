"""Teacher initialisation of a student: copy what fits, leave the rest at torch's init.

    copied = teacher_init_(student, teacher)   # names of the student tensors taken from the teacher

What is copied (the units are chosen with structured pruning's selection,
rnnslim.prune.structured: unit_scores = L1 magnitude of every weight a unit owns, top_units; that is
prune_units with reduce l1, its default until 2026-12 (now l2), kept here so committed student runs
re-run as they were):

    embedding / input_proj   the teacher's top-E features (all of them when E is equal);
                             not copied when the student is wider than the teacher
    decoder.bias             always (the output prior; the output size is the task's)
    recurrent layers         only for a same-cell student with the same number of layers, the
                             same directions and no layer wider than the teacher's: each layer
                             keeps the teacher's top-H units (rows of every gate, their
                             recurrent and consumer columns), as prune_units would cut them
    LSTMP student of a plain LSTM teacher: the projection starts as a selection of the P
                             highest-scored kept units (weight_hr rows are one-hot), so
                             weight_hh and the consumers read those P units' columns
    LSTMP teacher: its projections are cut to the student's P the same way (top-P)
    decoder.weight           with the recurrent layers (its columns follow the last layer's units)

A different cell, layer count or direction (or a student wider than its teacher, or a
teacher with projections and a student without) gets random recurrent layers and a random
decoder weight: its units have no counterpart in the teacher.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from rnnslim.graph.coupling import GroupKind
from rnnslim.models.sequence import InputKind, SequenceModel
from rnnslim.prune.structured import keep_units_, unit_groups
from rnnslim.prune.structured.select import top_units, unit_scores

_INPUT_MODULE = {InputKind.EMBEDDING: "embedding", InputKind.LINEAR: "input_proj"}


def recurrent_fits(student: SequenceModel, teacher: SequenceModel) -> str | None:
    """None when the teacher's recurrent layers can seed the student's, else why not."""
    s, t = student.spec, teacher.spec
    if s.cell is not t.cell:
        return f"different cell ({t.cell.value} teacher, {s.cell.value} student)"
    if len(s.layers) != len(t.layers):
        return f"different number of layers ({len(t.layers)} teacher, {len(s.layers)} student)"
    if not all(isinstance(m, nn.RNNBase) for m in teacher.rnn.layers):
        return "the teacher's recurrent layers are not plain torch modules (quantized?)"
    for k, (a, b) in enumerate(zip(t.layers, s.layers)):
        if a.bidirectional != b.bidirectional:
            return f"layer {k}: different directions"
        if b.hidden_size > a.hidden_size:
            return f"layer {k}: the student is wider ({b.hidden_size} > {a.hidden_size} units)"
        if a.proj_size and not b.proj_size:
            return f"layer {k}: the teacher has a projection ({a.proj_size}), the student none"
        if a.proj_size and b.proj_size > a.proj_size:
            return f"layer {k}: the student's projection is wider ({b.proj_size} > {a.proj_size})"
    return None


def _keeps(teacher: SequenceModel, student: SequenceModel, recurrent: bool) -> dict[str, Tensor]:
    """Group name -> kept indices (teacher numbering), scored on the uncut teacher like prune_units."""
    t, s = teacher.spec, student.spec
    groups = {g.name: g for g in unit_groups(teacher)}
    keeps = {}
    name = _INPUT_MODULE.get(t.input_kind)
    if name in groups and groups[name].kind is GroupKind.EMBED and s.embed_size < t.embed_size:
        keeps[name] = top_units(unit_scores(teacher, groups[name]), s.embed_size)
    if recurrent:
        for k, (a, b) in enumerate(zip(t.layers, s.layers)):
            if b.hidden_size < a.hidden_size:
                keeps[f"rnn.layers.{k}"] = top_units(unit_scores(teacher, groups[f"rnn.layers.{k}"]), b.hidden_size)
            if a.proj_size and b.proj_size < a.proj_size:
                g = groups[f"rnn.layers.{k}:proj"]
                keeps[g.name] = top_units(unit_scores(teacher, g), b.proj_size)
    return keeps


def _cols(sel: Tensor, width: int, directions: int) -> Tensor:
    """Columns of `sel` in a (.., directions * width) input: every direction's copy."""
    return torch.cat([sel + d * width for d in range(directions)])


def _project(cut: SequenceModel, student: SequenceModel, src: dict[str, Tensor]) -> None:
    """LSTMP student from a plain LSTM: its projection selects the top-P units of each layer.

    weight_hr (P, H) one-hot on the selected units; weight_hh (G*H, P) and the next layer's
    weight_ih / the decoder keep the columns of those units (`src` is edited in place)."""
    groups = {g.name: g for g in unit_groups(cut)}
    for k, spec in enumerate(student.spec.layers):
        if not spec.proj_size or cut.spec.layers[k].proj_size:
            continue
        sel = top_units(unit_scores(cut, groups[f"rnn.layers.{k}"]), spec.proj_size)
        H, D = spec.hidden_size, 2 if spec.bidirectional else 1
        onehot = torch.zeros(spec.proj_size, H, dtype=src[f"rnn.layers.{k}.weight_hh_l0"].dtype)
        onehot[torch.arange(spec.proj_size), sel] = 1.0
        for sfx in ("", "_reverse")[:D]:
            src[f"rnn.layers.{k}.weight_hr_l0{sfx}"] = onehot
            name = f"rnn.layers.{k}.weight_hh_l0{sfx}"
            src[name] = src[name][:, sel]
        consumer = [f"rnn.layers.{k + 1}.weight_ih_l0{sfx}" for sfx in ("", "_reverse")[:D]] \
            if k + 1 < len(student.spec.layers) else ["decoder.weight"]
        for name in consumer:
            if name in src:
                src[name] = src[name][:, _cols(sel, H, D)]


@torch.no_grad()
def teacher_init_(student: SequenceModel, teacher: SequenceModel) -> list[str]:
    """Copy what fits from `teacher` into `student` (see the module docstring); returns the
    copied tensor names. The teacher is not modified (the cut runs on a copy)."""
    stored = [n for n, t in teacher.state_dict().items() if not t.is_floating_point()]
    if stored:
        raise ValueError(f"init: teacher needs a floating-point teacher, this one stores integer tensors "
                         f"({', '.join(stored[:3])}{' ...' if len(stored) > 3 else ''}, quantized?): make the "
                         "student from the model before quantization, or use init: random")
    why = recurrent_fits(student, teacher)
    cut = copy.deepcopy(teacher).cpu()
    keeps = _keeps(cut, student, why is None)
    if keeps:
        keep_units_(cut, {name: k.tolist() for name, k in keeps.items()})
    src = {n: t.detach() for n, t in cut.state_dict().items()}
    if why is None:
        _project(cut, student, src)
    allowed = ("embedding.", "input_proj.", "decoder.bias") + (("rnn.", "decoder.weight") if why is None else ())
    copied = []
    for name, p in student.state_dict().items():
        t = src.get(name)
        if name.startswith(allowed) and t is not None and tuple(t.shape) == tuple(p.shape):
            p.copy_(t.to(device=p.device, dtype=p.dtype))
            copied.append(name)
    return copied
