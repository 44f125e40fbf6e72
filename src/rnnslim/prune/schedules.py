"""Sparsity schedules for gradual pruning.

AGP (Zhu & Gupta 2017, "To prune, or not to prune"): the sparsity rises fast first and
slowly at the end, while fine-tuning recovers in between:

    s(t) = s_f + (s_i - s_f) * (1 - (t - t0) / (t_end - t0))^3      for t0 <= t <= t_end

s(t0) = s_i, s(t_end) = s_f; before t0 nothing is pruned, after t_end it stays s_f.
Masks are recomputed every `frequency` optimizer steps between t0 and t_end (and at t_end).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


def agp_sparsity(step: int, initial: float, final: float, start: int, end: int) -> float:
    """The AGP cubic sparsity at optimizer step `step` (0.0 before `start`)."""
    if step < start:
        return 0.0
    if step >= end:
        return final
    frac = (step - start) / (end - start)
    return final + (initial - final) * (1.0 - frac) ** 3


class AGPSchedule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    final_sparsity: float = Field(ge=0.0, lt=1.0)
    initial_sparsity: float = Field(default=0.0, ge=0.0, lt=1.0)
    start_step: int = Field(default=0, ge=0, description="first pruning step (0 = before fine-tuning starts)")
    end_step: int = Field(ge=1, description="step at which the final sparsity is reached")
    frequency: int = Field(default=10, ge=1, description="recompute masks every this many steps")

    @model_validator(mode="after")
    def _check(self) -> AGPSchedule:
        if self.end_step <= self.start_step:
            raise ValueError(f"end_step ({self.end_step}) must be after start_step ({self.start_step})")
        if self.final_sparsity < self.initial_sparsity:
            raise ValueError(f"final_sparsity ({self.final_sparsity}) is below initial_sparsity "
                             f"({self.initial_sparsity})")
        return self

    def sparsity_at(self, step: int) -> float:
        return agp_sparsity(step, self.initial_sparsity, self.final_sparsity, self.start_step, self.end_step)

    def is_prune_step(self, step: int) -> bool:
        if not self.start_step <= step <= self.end_step:
            return False
        return (step - self.start_step) % self.frequency == 0 or step == self.end_step

    def points(self) -> list[tuple[int, float]]:
        """(step, sparsity) of every pruning point."""
        return [(t, self.sparsity_at(t)) for t in range(self.start_step, self.end_step + 1) if self.is_prune_step(t)]
