"""make_student: a compact SequenceModel for the teacher's task, optionally seeded from it.

    student = make_student(teacher, StudentSpec(cell="gru", hidden_size=296, embed_size=256))
    student = make_student(teacher, StudentSpec(hidden_size=256, proj_size=128, max_params=1_100_000))
    student.history[-1]   # {"op": "student", "params": ..., "copied": [...], "recurrent_not_copied": why or None, ...}

The student is a new model (the teacher is left as it was): same input and output as the
teacher (vocabulary / features, classes / targets, readout), the spec's cell and sizes. A
user's own nn.Module teacher gets a narrower copy of its own class (students/user.py).
Train it afterwards, usually with distillation from the teacher (rnnslim.train.distill; in a
recipe: a `student` stage followed by `finetune` with distill_alpha > 0).
"""

from __future__ import annotations

import copy

from torch import nn

from rnnslim.models.sequence import SequenceModel
from rnnslim.students.init import recurrent_fits, teacher_init_
from rnnslim.students.spec import StudentInit, StudentSpec, count_params, student_model_spec


def make_student(teacher: nn.Module, spec: StudentSpec, example_inputs: tuple | None = None) -> nn.Module:
    """A new student for `teacher`'s task shaped by `spec` (see the module docstring). A user's
    own nn.Module gets a narrower copy of itself (students/user.py; `example_inputs` for
    modules torch.fx cannot trace); a SequenceModel any cell and shape the spec asks for."""
    if not isinstance(spec, StudentSpec):
        raise TypeError(f"spec must be a StudentSpec, got {type(spec).__name__}")
    if not isinstance(teacher, SequenceModel):
        from rnnslim.students.user import user_student

        return user_student(teacher, spec, example_inputs)
    mspec = student_model_spec(teacher.spec, spec)
    n = count_params(mspec)
    if spec.max_params is not None and n > spec.max_params:
        sizes = [(s.hidden_size, s.proj_size) for s in mspec.layers]
        raise ValueError(f"the student has {n:,} parameters, over max_params {spec.max_params:,} (cell "
                         f"{mspec.cell.value}, embed {mspec.embed_size}, (hidden, proj) per layer {sizes})")
    tensors = list(teacher.parameters()) + list(teacher.buffers())
    floats = [t for t in tensors if t.is_floating_point()]
    device = tensors[0].device if tensors else "cpu"
    student = SequenceModel(mspec).to(device=device, dtype=floats[0].dtype if floats else None)
    actual = sum(p.numel() for p in student.parameters())
    if actual != n:
        raise RuntimeError(f"internal error: the student has {actual:,} parameters, the formula says {n:,}")
    copied: list[str] = []
    if spec.init is StudentInit.TEACHER:
        copied = teacher_init_(student, teacher)
    student.task_meta = copy.deepcopy(getattr(teacher, "task_meta", {}) or {})
    student.history = [{"op": "student", "spec": spec.model_dump(mode="json"), "params": n,
                        "teacher_params": sum(p.numel() for p in teacher.parameters()),
                        "teacher_spec": teacher.spec.model_dump(mode="json"), "init": spec.init.value,
                        "copied": copied,
                        "recurrent_not_copied": recurrent_fits(student, teacher) if spec.init is StudentInit.TEACHER
                        else "init: random",
                        "teacher_history": list(getattr(teacher, "history", None) or [])}]
    return student.train(teacher.training)
