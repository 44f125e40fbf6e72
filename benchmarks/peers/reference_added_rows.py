"""rnnslim rows added to a peer table after the peers ran: loss and bytes only (issue 21).

    .venv/bin/python benchmarks/peers/reference_added_rows.py --model chargru-512x2 --chars 5000

rnnslim's rows in "Against the tools people use" come from reference_outputs.py, called inside each
peer's run (so their step latencies share that run's rounds). A configuration added to
reference_extras.GPTQ_CONFIGS later (int4 with one scale per output row, AIMET's per-channel layout)
has no row in the committed peer JSONs until every peer is re-run. This script computes just those rows
on the same test prefix (the first --chars test characters: a row's loss and artifact bytes are
properties of the model and the text, not of the run) and stores them, with their own provenance and no
latency, under benchmarks/results/reference_added_rows.json[model][chars]; tables_peers.py adds them to
rnnslim's record of that model and prefix, marked as added, and counts them in the targets.

--configs picks from GPTQ_CONFIGS by label (default: every GPTQ config whose row the committed record of
that model and prefix lacks).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA, MODELS, RESULTS, provenance  # noqa: E402
from reference_extras import GPTQ_CONFIGS, gptq_label, gptq_rows  # noqa: E402

from rnnslim.io.format import load_model  # noqa: E402
from rnnslim.tasks.charlm import CharLMTask  # noqa: E402
from rnnslim.utils.atomic import write_json_atomic  # noqa: E402

OUT = RESULTS / "reference_added_rows.json"


def recorded_variants(model: str, chars: int) -> set[str]:
    """Variants of every rnnslim record of `model` on the first `chars` characters in the peer JSONs."""
    out = set()
    for p in RESULTS.glob("peers_*.json"):
        run = json.loads(p.read_text()).get(model) or {}
        ref = run.get("rnnslim") or {}
        if ref.get("test_chars") == chars:
            out |= {r["variant"] for r in ref.get("rows", [])}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--chars", type=int, required=True, help="the prefix of the peer runs to add to")
    ap.add_argument("--configs", nargs="*", help="GPTQ labels, e.g. 'int4 per-row sym mse' (default: missing ones)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    have = recorded_variants(args.model, args.chars)
    if not have:
        raise SystemExit(f"no peer JSON holds an rnnslim record of {args.model} on {args.chars} characters")
    wanted = [c for c in GPTQ_CONFIGS if (gptq_label(*c) in args.configs if args.configs else
                                          f"rnnslim weight-only GPTQ {gptq_label(*c)}" not in have)]
    if not wanted:
        print("nothing to add: every GPTQ config has its row", flush=True)
        return
    base = load_model(MODELS / f"{args.model}.json")
    task = CharLMTask.for_model(base, DATA)
    d = task.split("test")[: args.chars + 1]
    rows = gptq_rows(args.model, base, task, d, lambda **kw: None, configs=wanted)
    data = json.loads(OUT.read_text()) if OUT.exists() else {}
    data.setdefault(args.model, {})[str(args.chars)] = {"rows": rows, "test_chars": args.chars, **provenance()}
    write_json_atomic(OUT, data)
    print(f"wrote {len(rows)} row(s) to {OUT}", flush=True)


if __name__ == "__main__":
    main()
