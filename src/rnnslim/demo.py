"""`rnnslim demo`: the whole product in a few minutes on any machine, no data file needed.

1. trains a small character LSTM on the built-in corpus (the Python standard library's
   own source files), resumable in OUT/train;
2. compresses it with the built-in recipe (src/rnnslim/recipes/demo.yaml) in OUT/compress;
3. measures the result against the uncompressed model and the baselines in one run;
4. prints a table and writes OUT/compress/report.md (+ report.json, accuracy_vs_size.png) and
   OUT/compress/report.html (one self-contained page, with the baselines of step 3).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path


def demo_recipe_text() -> str:
    return resources.files("rnnslim.recipes").joinpath("demo.yaml").read_text()


def run_demo(out: Path, quick: bool = False, log: Callable[[str], None] = print) -> dict:
    import torch

    from rnnslim.io.format import save_model
    from rnnslim.measure import measure
    from rnnslim.measure.results import MeasureSettings
    from rnnslim.models.sequence import SequenceModel
    from rnnslim.pipeline.recipe import Recipe
    from rnnslim.pipeline.runner import run_pipeline
    from rnnslim.report.html import write_html_report
    from rnnslim.report.markdown import results_table
    from rnnslim.report.names import REPORT_JSON
    from rnnslim.tasks.charlm import CharLMTask
    from rnnslim.train import TrainConfig, load_best, train

    t0 = time.perf_counter()
    out = Path(out)
    task = CharLMTask(max_chars=150_000 if quick else 400_000)
    log(f"[1/3] corpus: Python standard library sources, {len(task.ids):,} characters, {len(task.vocab)} symbols")
    torch.manual_seed(0)
    hidden = 64 if quick else 256
    model = SequenceModel(task.model_spec(cell="lstm", hidden_size=hidden, num_layers=2))
    model.task_meta = task.meta()
    cfg = TrainConfig(epochs=1, max_steps=40 if quick else 200, batch_size=32, seq_len=64, lr=4e-3,
                      schedule="onecycle", eval_max_steps=4000, checkpoint_every=50)
    log(f"      training an LSTM {hidden}x2 for {cfg.max_steps} steps (resumable in {out / 'train'})")
    result = train(model, task, cfg, checkpoint_dir=out / "train" / "checkpoints")
    load_best(model, result)
    model.history = [{"op": "train", "steps": result.steps, "best_valid": result.best_metric}]
    save_model(model, out / "train" / "model")

    recipe = Recipe.from_yaml(demo_recipe_text())
    if quick:  # a few fine-tuning steps only (tests)
        stages = [s.model_copy(update={"max_steps": 5}) if s.kind == "finetune" else s for s in recipe.stages]
        recipe = recipe.model_copy(update={"stages": stages})
    log(f"[2/3] compressing with the built-in recipe: {' -> '.join(s.kind for s in recipe.stages)}")
    pipe = run_pipeline(model, recipe, task, out / "compress", resume=True)
    final = pipe.final_model

    log("[3/3] measuring the compressed model against the uncompressed one and the baselines")
    # quick timing, but the loss over the whole test split: the same figure as the stage table above
    settings = MeasureSettings.for_quick()
    if not quick:
        settings = settings.model_copy(update={"eval_max_steps": None})
    report = measure(final, task=task, split="test", baseline=model, threads=(1,), settings=settings,
                     artifact_path=out / "compress" / "model")
    # the per-stage results table (not the whole report.md: its path is printed), then the measurement
    table = results_table(json.loads((out / "compress" / REPORT_JSON).read_text(encoding="utf-8"))) + "\n\n" + report.table()
    (out / "measure.json").write_text(json.dumps(report.to_dict(), indent=1, default=str))
    html = write_html_report(out / "compress", measurement=report.to_dict())  # now with the baselines
    elapsed = time.perf_counter() - t0
    log(f"done in {elapsed:.0f} s; report: {out / 'compress' / 'report.md'} and {html} (open it in a browser)")
    return {"out": str(out), "report": str(out / "compress" / "report.md"), "html": str(html), "seconds": elapsed,
            "stages": pipe.summary(), "measure": report.to_dict(), "table": table}
