"""A small three-stage PipelineResult (input, finetune, cast) for the report tests."""

from __future__ import annotations

from rnnslim.pipeline.recipe import Recipe
from rnnslim.pipeline.result import PipelineResult, StageRow

RECIPE = Recipe.from_yaml("version: 1\nname: rep\nmeasure: {latency: true}\nstages:\n"
                          "  - {kind: finetune, max_steps: 3}\n  - {kind: cast, dtype: bf16}\n")


def _row(i, kind, valid, test, nbytes, lat, reused=False):
    return StageRow(index=i, kind=kind, dir=f"stages/{i:02d}-{kind}", config={"kind": kind}, hash=f"h{i}",
                    reused=reused,
                    measurements={"metrics": {"valid": {"loss_nats": valid, "bits_per_char": valid / 0.693},
                                              "test": {"loss_nats": test}},
                                  "params": 1000, "nonzeros": 900 - i, "artifact_bytes": nbytes,
                                  "latency": {"median_ms": lat} if lat else None, "latency_ms": lat},
                    timings={"run_s": 0.5 * i, "evaluate_s": 0.1}, record={"steps": 3} if kind == "finetune" else {})


def _result(tmp_path, lat=True) -> PipelineResult:
    rows = [_row(0, "input", 1.50, 1.60, 40_000, 0.20 if lat else None),
            _row(1, "finetune", 1.45, 1.55, 40_100, 0.20 if lat else None, reused=True),
            _row(2, "cast", 1.46, 1.56, 20_100, 0.30 if lat else None)]
    return PipelineResult(recipe=RECIPE, out_dir=tmp_path, model=None, rows=rows,
                          task={"name": "charlm", "primary_metric": "loss_nats", "higher_is_better": False, "meta": {}},
                          device="cpu", started_at="2026-01-01T00:00:00+00:00",
                          finished_at="2026-01-01T00:01:00+00:00", wall_s=60.0)
