"""`rnnslim measure` on the reference models: sizes, MACs, test metric, streaming latency and
throughput at 1 and 2 threads, with every baseline measured in the same run.

    .venv/bin/python benchmarks/measure_reference.py [--models charlstm-512x2 ...] [--threads 1,2]

Writes benchmarks/results/measure_reference.json (one MeasureReport per model).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA, MODELS, RESULTS, update_results  # noqa: E402


def main() -> None:
    from rnnslim.io.format import load_model
    from rnnslim.measure import measure
    from rnnslim.tasks import task_for_model

    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=["charlstm-512x2", "chargru-512x2", "charlstm-256x2"])
    ap.add_argument("--threads", default="1,2")
    args = ap.parse_args()
    threads = tuple(int(t) for t in args.threads.split(","))
    for name in args.models:
        model = load_model(MODELS / f"{name}.json")
        report = measure(model, task=task_for_model(model, DATA), threads=threads, artifact_path=MODELS / f"{name}.json",
                         log=lambda m: print(f"  {m}", flush=True))
        print(report.table(), flush=True)
        update_results(RESULTS / "measure_reference.json", name, report.to_dict())


if __name__ == "__main__":
    main()
