"""Memory the integer C kernel holds at run time, next to the artifact on disk (issue 11).

    .venv/bin/python benchmarks/kernel_memory.py   # -> benchmarks/results/kernel_memory.json

No timing: every figure is a byte count of the arrays IntegerProgram packs for the host
kernel (IntegerProgram.resident_bytes): int8 matrices, per-row constants, lookup tables, the
folded embedding table built at load (layer 0's W_ih x every embedding row, V x G*H int32),
scratch buffers and the streaming state. The dense int8 models are quantized exactly as
benchmarks/deploy_bench.py does (8 calibration batches of 16 x 64).
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA, MODELS, RESULTS, update_results  # noqa: E402

from rnnslim.io.format import load_model  # noqa: E402
from rnnslim.measure.size import measure_artifact  # noqa: E402
from rnnslim.quantize.int8 import Int8Config, Int8Mode, quantize_int8_  # noqa: E402
from rnnslim.quantize.int8.packed import IntegerProgram  # noqa: E402
from rnnslim.tasks.charlm import CharLMTask  # noqa: E402


def row(model, fold: bool) -> dict:
    p = IntegerProgram.from_model(model, fold_embedding=fold)
    table = p.layers[0].tx_table
    return {"folded_embedding": table is not None, "resident_bytes": p.resident_bytes(),
            "folded_table_bytes": 0 if table is None else int(table.nbytes), "bytes_per_step": p.bytes_per_step(),
            "scratch_bytes": p.scratch_bytes(), "state_bytes": 2 * p.state_len}


def main() -> None:
    out = {}
    for name in ("charlstm-512x2", "chargru-512x2"):
        base = load_model(MODELS / f"{name}.json").eval()
        task = CharLMTask.for_model(base, DATA)
        m = quantize_int8_(copy.deepcopy(base), Int8Config(mode=Int8Mode.INTEGER),
                           calibration=[b.inputs for b in task.calibration_batches(8, batch_size=16, seq_len=64)])
        on_disk, _ = measure_artifact(m)  # save_model to a temporary directory, real bytes
        out[name] = {"artifact_bytes": on_disk, "rows": [row(m, True), row(m, False)]}
        print(name, out[name], flush=True)
    update_results(RESULTS / "kernel_memory.json", "result", out)


if __name__ == "__main__":
    main()
