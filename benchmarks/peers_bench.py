"""Every peer benchmark of issue 21 for a model, one after another, each in its own venv.

    .venv/bin/python benchmarks/peers_bench.py                # every peer, every model
    .venv/bin/python benchmarks/peers_bench.py --models charlstm-256x2 --peers litert,brevitas
    .venv/bin/python benchmarks/peers_bench.py --dry-run      # print what would run

PEERS is the table peer -> venv (the first of its candidate folders under --venv-root that has
bin/python) -> script in benchmarks/peers/ -> results file. A peer whose venv or script is missing is
not run: its results file gets, under the model, one row with outcome "not_installed" and the reason
(never over a real result already there). The char models go to every peer; the classifiers of the
"your model to the device" table only to the peers whose script takes them (LiteRT). Each script writes
benchmarks/results/peers_<peer>.json itself (the schema: benchmarks/peers/peer_common.py); this prints
where they went. Runs are sequential on purpose: each times itself against rnnslim's C kernel in
alternating rounds, and the machine is shared. Setup of each venv: benchmarks/peers/README.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "peers"))
from peer_common import RESULTS, ROOT, command_line, git_commit, machine, now, write_result  # noqa: E402

CHAR_MODELS = ("charlstm-256x2", "charlstm-512x2", "chargru-512x2")
CLASSIFIERS = ("basicmotions-lstm32", "japanesevowels-lstm48", "japanesevowels-gru64")  # reference_classifier.py


@dataclass(frozen=True)
class Peer:
    name: str  # the results file is peers_<name>.json
    label: str
    venvs: tuple[str, ...]  # candidate venv folders under --venv-root, first found wins
    script: str  # in benchmarks/peers/
    classifiers: bool = False  # whether the script takes the classifier names too


PEERS = (
    Peer("litert", "LiteRT / TFLite Micro", ("peers-venv", "peers-litert"), "litert_bench.py", classifiers=True),
    Peer("brevitas", "Brevitas", ("peers-brevitas",), "brevitas_bench.py"),
    Peer("aimet", "AIMET", ("peers-aimet",), "aimet_bench.py"),
    Peer("torchao", "torchao", ("peers-torchao",), "torchao_bench.py"),
    Peer("executorch", "ExecuTorch", ("peers-executorch", "peers-torchao"), "executorch_bench.py"),
    Peer("torch_pruning", "Torch-Pruning", ("peers-torch-pruning", "peers-torch_pruning", "peers-torchpruning"),
         "torch_pruning_bench.py"),
)


def find_python(peer: Peer, root: Path) -> tuple[Path | None, str | None]:
    """(the venv's python, None) or (None, why the peer cannot run here)."""
    script = ROOT / "benchmarks" / "peers" / peer.script
    if not script.exists():
        return None, f"benchmarks/peers/{peer.script} is not in this checkout"
    for v in peer.venvs:
        if (root / v / "bin" / "python").exists():
            return root / v / "bin" / "python", None
    return None, (f"no venv: none of {', '.join(str(root / v) for v in peer.venvs)} has bin/python (setup: "
                  f"benchmarks/peers/README.md, or the docstring of benchmarks/peers/{peer.script})")


def record_not_installed(peer: Peer, model: str, reason: str) -> None:
    """A not_installed row under `model` in the peer's results, unless a real result is there."""
    out = RESULTS / f"peers_{peer.name}.json"
    old = (json.loads(out.read_text()) if out.exists() else {}).get(model)
    if old and any(r.get("outcome", "ok") != "not_installed" for r in old.get("rows", [])):
        print(f"  kept the earlier result of {peer.label} on {model} in {out.relative_to(ROOT)}", flush=True)
        return
    row = {"variant": f"{peer.label} (not run)", "peer": peer.label, "api": None, "mode": None, "bits": None,
           "outcome": "not_installed", "error": reason}
    write_result(out, model, {"model": model, "rows": [row], "command": command_line(), "git_commit": git_commit(),
                              "machine": machine(), "date": now()})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=",".join(CHAR_MODELS + CLASSIFIERS))
    ap.add_argument("--peers", default=",".join(p.name for p in PEERS))
    ap.add_argument("--venv-root", type=Path, default=ROOT.parent, help="where the peers' venvs are")
    ap.add_argument("--timeout", type=int, default=3600, help="seconds per peer script and model")
    ap.add_argument("--dry-run", action="store_true")
    args = ap.parse_args()
    by_name = {p.name: p for p in PEERS}
    unknown = [p for p in args.peers.split(",") if p not in by_name]
    if unknown:
        raise SystemExit(f"unknown peer(s) {unknown}: choose from {sorted(by_name)}")
    summary = []
    for model in args.models.split(","):
        for peer in (by_name[p] for p in args.peers.split(",")):
            if model in CLASSIFIERS and not peer.classifiers:
                print(f"{peer.label} on {model}: skipped (its script covers the char models only)", flush=True)
                continue
            python, reason = find_python(peer, args.venv_root)
            if python is None:
                print(f"{peer.label} on {model}: not installed: {reason}", flush=True)
                summary.append((peer, model, "not_installed"))
                if not args.dry_run:
                    record_not_installed(peer, model, reason)
                continue
            cmd = [str(python), str(Path("benchmarks") / "peers" / peer.script), "--model", model]
            print(f"{peer.label} on {model}: {' '.join(cmd)}", flush=True)
            if args.dry_run:
                continue
            t0 = time.perf_counter()
            try:
                rc = subprocess.run(cmd, cwd=ROOT, timeout=args.timeout).returncode
            except subprocess.TimeoutExpired:
                rc = "timeout"
            summary.append((peer, model, f"exit {rc} after {time.perf_counter() - t0:.0f} s"))
    print("\nresults:", flush=True)
    for peer, model, what in summary:
        print(f"  {peer.label:22s} {model:24s} {what:28s} -> benchmarks/results/peers_{peer.name}.json", flush=True)
    print("render: python benchmarks/make_tables.py (section 'Against the tools people use')", flush=True)


if __name__ == "__main__":
    main()
