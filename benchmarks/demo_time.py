"""Wall time of `rnnslim demo` on this machine (issue 11: the demo must finish in <= 5 minutes
on 2 cores), in a fresh output folder, nothing else running by choice.

    python benchmarks/demo_time.py

Writes benchmarks/results/demo_time.json (wall seconds, exit code, per-stage lines the demo
printed, machine and load average at the start).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, update_results  # noqa: E402


def main() -> None:
    rnnslim = Path(sys.executable).with_name("rnnslim")
    with tempfile.TemporaryDirectory(prefix="demo_time_") as tmp:
        load = os.getloadavg()
        t0 = time.perf_counter()
        proc = subprocess.run([str(rnnslim), "demo", "--out", str(Path(tmp) / "demo")], capture_output=True, text=True)
        wall = time.perf_counter() - t0
    stages = [ln.strip() for ln in proc.stderr.splitlines() if "[rnnslim] [" in ln and "s" in ln]
    result = {"wall_s": round(wall, 1), "exit_code": proc.returncode, "within_5_min": wall <= 300,
              "cpus": os.cpu_count(), "load_average_at_start": [round(x, 2) for x in load], "stage_lines": stages,
              "table_printed": "vs torch" in proc.stdout or "|" in proc.stdout}
    update_results(RESULTS / "demo_time.json", "demo", result)
    print(f"rnnslim demo: {wall:.1f} s, exit {proc.returncode}")


if __name__ == "__main__":
    main()
