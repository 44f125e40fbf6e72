"""Pipeline stage `delta`: delta-network thresholds on a fully integer model (after int8_integer),
saved with it, so evaluation, `rnnslim measure` and IntegerRunner run the kernel's delta step
(rnnslim.quantize.int8.delta: a matrix column is skipped while its int8 input code moved by
less than the threshold since it was last transmitted).

    - kind: int8_integer
    - kind: delta
      threshold: 3              # int8 code units, every layer; or per layer {0: 2, 1: 4}
                                # (unnamed layers stay dense); 1 = lossless (unchanged codes only)

ctx.record: the thresholds and, on `measure_steps` steps of training data through the C kernel
(batch 1, one stream), the share of the delta matrices' MACs skipped (delta_stats).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from torch import nn

from rnnslim.pipeline.model_fields import check_layer_keys
from rnnslim.pipeline.stage import StageConfig, StageContext, register_stage
from rnnslim.quantize.int8.delta import delta_thresholds, set_delta_threshold_


class DeltaStage(StageConfig):
    """Delta-network thresholds on an int8_integer model: skip the columns whose input barely changed."""

    kind: Literal["delta"] = "delta"
    threshold: int | dict[int, int] = Field(
        default=1, description="|new - last transmitted| below this skips a column (int8 code units, >= 0): one "
                               "for every layer, or {layer: threshold} (other layers dense); 0 and 1 are exact")
    measure_steps: int = Field(default=2000, ge=0, description="steps of training data to count skipped MACs on "
                                                               "(0: do not measure)")

    def check_against(self, model) -> None:
        check_layer_keys("threshold", self.threshold if isinstance(self.threshold, dict) else None, model)


@register_stage(DeltaStage)
def run_delta(model: nn.Module, cfg: DeltaStage, ctx: StageContext) -> nn.Module:
    set_delta_threshold_(model, cfg.threshold)
    ctx.record["thresholds"] = delta_thresholds(model)
    if cfg.measure_steps:
        ctx.record["measured"] = _measure(model.cpu(), ctx, cfg.measure_steps)
    return model


def _measure(model: nn.Module, ctx: StageContext, steps: int) -> dict | str:
    from rnnslim.quantize.int8.kernel import KernelUnavailable
    from rnnslim.quantize.int8.runner import IntegerRunner

    try:
        runner = IntegerRunner(model)
    except KernelUnavailable as e:
        return f"not measured: {e}"
    x = ctx.task.calibration_batches(1, 1, steps, seed=ctx.seed)[0].inputs[:, 0]  # one stream, (T,) or (T, F)
    _, state = runner.run(x) if runner.features is None else runner.run_features(x)
    return runner.delta_stats(state).to_dict() | {"steps_measured": int(x.shape[0])}
