"""Compact students: a new, smaller model for the teacher's task, trained by distillation.

    from rnnslim.students import StudentSpec, make_student, count_params
    student = make_student(teacher, StudentSpec(cell="gru", hidden_size=296, embed_size=256,
                                                max_params=1_100_000))      # init="teacher" by default
    distill_(student, Distillation(alpha=0.5, train=TrainConfig(max_steps=1500)), teacher=teacher, task=task)

    spec.py   StudentSpec (cell, sizes, projection, embedding, dropout, init, max_params),
              student_model_spec (the teacher's task, the student's body), count_params (formula)
    init.py   teacher_init_: what is copied from the teacher (embedding, decoder, top units)
    make.py   make_student
    distill.py  Distillation, the config of rnnslim.distill_ (train the student on the teacher)

In a recipe: `kind: student` (rnnslim.pipeline.stages.student), then `finetune` with
distill_alpha > 0 (the teacher is the pipeline's input model).
"""

from rnnslim.students.distill import Distillation, DistillResult
from rnnslim.students.init import teacher_init_
from rnnslim.students.make import make_student
from rnnslim.students.spec import StudentInit, StudentSpec, count_params, student_model_spec

__all__ = ["DistillResult", "Distillation", "StudentInit", "StudentSpec", "count_params", "make_student",
           "student_model_spec", "teacher_init_"]
