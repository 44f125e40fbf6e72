"""What run_pipeline returns: one row per model (row 0 = input) and the final model."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rnnslim.pipeline.recipe import Recipe


@dataclass
class StageRow:
    index: int  # 0 = the input model, then 1..N in recipe order
    kind: str  # stage kind; "input" for row 0
    dir: str  # relative to out_dir, e.g. "stages/01-finetune"
    config: dict  # the stage config as in the recipe (row 0: where the input came from)
    hash: str  # hash chain (see fingerprint.py)
    reused: bool  # loaded from an earlier run instead of executed now
    measurements: dict  # metrics{valid,test}, params, nonzeros, artifact_bytes, latency, latency_ms
    timings: dict = field(default_factory=dict)  # seconds: run_s, save_s, load_s, evaluate_s, latency_s
    record: dict = field(default_factory=dict)  # the stage's ctx.record

    @property
    def label(self) -> str:
        return "input" if self.index == 0 else f"{self.index:02d}-{self.kind}"

    def metric(self, split: str, name: str) -> float | None:
        return self.measurements.get("metrics", {}).get(split, {}).get(name)


@dataclass
class PipelineResult:
    recipe: Recipe
    out_dir: Path
    model: Any  # the final SequenceModel (loaded from out_dir/model)
    rows: list[StageRow]
    task: dict  # name, primary_metric, higher_is_better, meta (without long vocabularies)
    device: str
    started_at: str
    finished_at: str
    wall_s: float
    report_paths: dict = field(default_factory=dict)

    @property
    def final_model(self) -> Any:
        return self.model

    @property
    def input_row(self) -> StageRow:
        return self.rows[0]

    @property
    def final_row(self) -> StageRow:
        return self.rows[-1]

    def summary(self) -> dict:
        """A short JSON-able summary: where things are and each row's headline numbers."""
        metric = self.task["primary_metric"]
        base = self.rows[0].measurements.get("artifact_bytes")
        rows = []
        for r in self.rows:
            size = r.measurements.get("artifact_bytes")
            rows.append({"stage": r.label, "reused": r.reused, f"valid_{metric}": r.metric("valid", metric),
                         f"test_{metric}": r.metric("test", metric), "artifact_bytes": size,
                         "size_vs_input": size / base if size and base else None,
                         "latency_ms": r.measurements.get("latency_ms")})
        return {"recipe": self.recipe.name, "out_dir": str(self.out_dir), "final_model": str(self.out_dir / "model"),
                "report": self.report_paths, "wall_s": self.wall_s, "rows": rows}

    def to_dict(self) -> dict:
        return {
            "recipe": self.recipe.to_dict(),
            "out_dir": str(self.out_dir),
            "task": self.task,
            "device": self.device,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "wall_s": self.wall_s,
            "rows": [{**asdict(r), "label": r.label} for r in self.rows],
        }
