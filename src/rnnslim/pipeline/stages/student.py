"""Pipeline stage `student`: replace the model by a compact student (rnnslim.students).

    - kind: student            # a GRU student of an LSTM teacher, <= 1.1 M parameters
      cell: gru
      hidden_size: 296
      embed_size: 256
      init: teacher            # copy what fits: embedding, decoder (bias), same-cell top units
      max_params: 1100000
    - kind: finetune           # train it; the teacher is the pipeline's input model
      max_steps: 1500
      distill_alpha: 0.5

Fields: those of rnnslim.students.StudentSpec. The student is built for the stage's input
model (its task; `init: teacher` copies from it); a later `finetune` distills from the
pipeline's input model. ctx.record gets the parameter counts, the sizes and what was copied.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from torch import nn

from rnnslim.pipeline.stage import StageConfig, StageContext, register_stage
from rnnslim.students import StudentSpec, make_student


class StudentStage(StageConfig, StudentSpec):
    """Replace the model by make_student(model, StudentSpec(fields))."""

    kind: Literal["student"] = "student"
    changes_structure: ClassVar[bool] = True


@register_stage(StudentStage)
def run_student(model: nn.Module, cfg: StudentStage, ctx: StageContext) -> nn.Module:
    student = make_student(model, StudentSpec(**cfg.model_dump(exclude={"kind"})))
    info = student.history[-1]
    ctx.record.update({"params_before": info["teacher_params"], "params_after": info["params"],
                       "cell": student.spec.cell.value, "embed_size": student.spec.embed_size,
                       "layers": [s.model_dump() for s in student.spec.layers], "init": info["init"],
                       "copied": info["copied"], "recurrent_not_copied": info["recurrent_not_copied"]})
    return student.to(ctx.device)
