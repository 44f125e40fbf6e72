"""Students of a user's own nn.Module: the same code, narrower recurrent layers.

    student = make_student(my_lm, StudentSpec(hidden_size=128), example_inputs=(x,))
    # train it with your loop and rnnslim.train.distill.kd_loss(student_logits, teacher_logits, T)
    save_edited(student, "out/")        # load_edited(MyLM(...), "out/") rebuilds the narrow model

Without a ModelSpec rnnslim cannot write a new module of another shape, so a student of a
user's module is a copy of the teacher with units removed by structured pruning (magnitude:
the units that carry most weight), which gives its widths; `init: random` then draws every
weight anew. What the module's code fixes stays as it is: the cell type, the number of
layers, projections, the embedding width and bidirectionality (asking for another is an
error naming SequenceModel). The copy's cut is in its history, so save_edited / load_edited
re-create it from the user's code like any pruned model.
"""

from __future__ import annotations

import copy
import warnings

from torch import nn

from rnnslim.students.spec import StudentInit, StudentSpec

FIXED_BY_CODE = ("cell", "num_layers", "embed_size", "bidirectional", "dropout")


def user_student(teacher: nn.Module, spec: StudentSpec, example_inputs: tuple | None = None) -> nn.Module:
    """A narrower copy of `teacher` (module docstring); the teacher is left as it was."""
    from rnnslim.graph.coupling import GroupKind
    from rnnslim.graph.discover import discover_coupling
    from rnnslim.graph.groups import build_groups
    from rnnslim.prune.structured import StructuredPruning, append_history, prune_units_

    if isinstance(teacher, nn.RNNBase):
        raise TypeError(f"a bare {type(teacher).__name__} returns its hidden units, so a narrower one computes "
                        "another function; make a student of the module around it (with its head), or of an "
                        "rnnslim SequenceModel teacher")
    fixed = [f for f in FIXED_BY_CODE if getattr(spec, f) is not None] + (["proj_size"] if spec.proj_size else [])
    if fixed:
        raise ValueError(f"a student of your own {type(teacher).__name__} keeps its code, so only hidden_size / "
                         f"hidden_sizes, init and max_params apply (got {', '.join(fixed)}); "
                         "for another cell, layer count, projection or embedding width build the teacher as an "
                         "rnnslim SequenceModel")
    if example_inputs is not None and not isinstance(example_inputs, tuple):
        example_inputs = (example_inputs,)
    groups = [g for g in build_groups(teacher, discover_coupling(teacher, example_inputs, strict=False))
              if g.kind is GroupKind.HIDDEN]
    sizes = spec.layer_sizes(len(groups))
    if len(sizes) != len(groups):
        raise ValueError(f"hidden_sizes gives {len(sizes)} widths; {type(teacher).__name__} has {len(groups)} "
                         f"recurrent layers ({', '.join(g.name for g in groups)})")
    wider = [(g.name, g.size, h) for g, h in zip(groups, sizes) if h > g.size]
    if wider:
        raise ValueError(f"a student of your own module is no wider than its teacher: (layer, teacher, asked) {wider}")
    student = copy.deepcopy(teacher)
    per_layer = {g.name: (g.size - h) / g.size for g, h in zip(groups, sizes) if h < g.size}
    res = None
    if per_layer:
        res = prune_units_(student, StructuredPruning(per_layer=per_layer, round_to=1), example_inputs=example_inputs)
    if spec.init is StudentInit.RANDOM:
        for m in student.modules():
            if m is not student and hasattr(m, "reset_parameters"):
                m.reset_parameters()
    n = sum(p.numel() for p in student.parameters())
    if spec.max_params is not None and n > spec.max_params:
        raise ValueError(f"the student has {n:,} parameters, over max_params {spec.max_params:,} (widths {sizes})")
    stale = list(res.stale_attributes) if res is not None else []
    if stale:
        warnings.warn(f"the student's code still names the teacher's sizes: {'; '.join(stale)}; update them "
                      "(e.g. the attribute init_hidden reads) before using that code", stacklevel=3)
    append_history(student, {"op": "student", "spec": spec.model_dump(mode="json"), "params": n,
                             "teacher_params": sum(p.numel() for p in teacher.parameters()),
                             "init": spec.init.value, "stale_attributes": stale})
    return student.train(teacher.training)
