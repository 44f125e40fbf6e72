"""What every peer script shares (numpy + safetensors only: it runs in any peer's venv).

Each peer (LiteRT, Brevitas, AIMET, torchao, Torch-Pruning, ExecuTorch) runs in a venv of its own and
never imports rnnslim. It reads the reference model and the test text itself with these helpers, calls
`reference_outputs.py` with the project's python for rnnslim's rows on the same characters, and writes
`benchmarks/results/peers_<peer>.json` with `write_result` in the row schema below, so one table script
(benchmarks/tables_peers.py) renders every peer.

Row schema (one dict per variant a peer offers, a failure included):
    variant       "Brevitas QuantLSTM int8 W8A8" (peer + what was made)
    peer, api     "Brevitas", "brevitas.nn.QuantLSTM(weight_bit_width=8, ...)": the exact API
    mode, bits    "int8" / "int4 weight-only" / ..., weight bits (8, 4, ...)
    outcome       "ok" | "refused" | "crashed" | "skips_recurrent" | "does_not_run" | "not_installed"
    error         one line, when outcome is not "ok" (the peer's own message)
    loss_nats     mean NLL on the test prefix, one stream at batch 1, state carried (ok rows)
    bytes, bytes_how   what the peer's artifact weighs on disk and what file that is
    latency       {"median_ms", "spread_ms", "load_avg", "how"} of a streaming step at batch 1, 1 thread
    note          anything a reader must know (e.g. "fake-quant: runs float kernels")
Per model: {"model", "test_chars", "test_text", "rows", "rnnslim" (reference.json), "interleaved_latency"
({"rounds": [{"rnnslim_int8_c_kernel_ms", "peer_ms": {variant: ms}, "load_avg"}], "rnnslim_int8_median_ms",
"peer_median_ms", "speedup_per_variant"}), "versions", "machine", "command", "git_commit", "seconds", "date"}.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.metadata as md
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SHARED = ROOT.parent / "shared"
MODELS, DATA = SHARED / "models", SHARED / "data" / "tinyshakespeare.txt"
RESULTS = ROOT / "benchmarks" / "results"
MAIN_PYTHON = str(ROOT / ".venv" / "bin" / "python")
CALIB_SEGMENTS, CALIB_LEN = 8, 1024


# ---- the reference model and text (rnnslim.tasks.charlm's split, read directly) -----------------------------

def load_reference(name: str) -> tuple[dict, dict[str, np.ndarray]]:
    """(spec, weights) of ../shared/models/NAME: the JSON (cell, hidden_size, num_layers, vocab) and the
    torch-layout tensors (embedding.weight, rnn.weight_ih_l0, ..., decoder.weight/bias)."""
    return json.loads((MODELS / f"{name}.json").read_text()), load_file(str(MODELS / f"{name}.safetensors"))


def load_text_ids(vocab: list[str]) -> np.ndarray:
    """The file's characters as ids (N,) int64 (newlines normalised to \\n, as rnnslim reads it)."""
    text = DATA.read_text(encoding="utf-8")
    index = {c: i for i, c in enumerate(vocab)}
    return np.fromiter((index[c] for c in text), dtype=np.int64, count=len(text))


def split(ids: np.ndarray, name: str) -> np.ndarray:
    n = len(ids)
    n1, n2 = int(0.9 * n), int(0.95 * n)  # train [0, 0.9) valid [0.9, 0.95) test [0.95, 1.0)
    return {"train": ids[:n1], "valid": ids[n1:n2], "test": ids[n2:]}[name]


def calibration_stream(train: np.ndarray) -> np.ndarray:
    """CALIB_SEGMENTS x CALIB_LEN contiguous characters at evenly spaced offsets, concatenated (S*L,)."""
    starts = np.linspace(0, len(train) - CALIB_LEN - 1, CALIB_SEGMENTS).astype(int)
    return np.concatenate([train[s : s + CALIB_LEN] for s in starts])


CALIBRATION_TEXT = (f"{CALIB_SEGMENTS} x {CALIB_LEN} contiguous training characters at evenly spaced offsets "
                    f"of the training split, state carried")


def test_text(chars: int) -> str:
    return (f"the first {chars} characters of the test split [0.95, 1.0) of ../shared/data/tinyshakespeare.txt, "
            f"one stream at batch 1, state carried")


def nll(logits: np.ndarray, targets: np.ndarray) -> dict:
    """Mean NLL of targets (T,) under logits (T, V), in float64."""
    z = logits.astype(np.float64)
    m = z.max(axis=1, keepdims=True)
    lse = (m[:, 0] + np.log(np.exp(z - m).sum(axis=1)))
    nats = float(np.mean(lse - z[np.arange(len(targets)), targets]))
    return {"loss_nats": nats, "bits_per_char": float(nats / np.log(2)), "tokens": int(len(targets))}


def one_line(e: BaseException | str) -> str:
    """An exception (or text) as one line: its last non-empty line, type-prefixed, cut at 300 characters."""
    text = e if isinstance(e, str) else f"{type(e).__name__}: {e}"
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    return (lines[-1] if lines else str(text))[:300]


# ---- rnnslim's side, through the project's venv --------------------------------------------------------------

def rnnslim_reference(model: str, chars: int, parity_chars: int = 2000, no_latency: bool = False,
                      main_python: str = MAIN_PYTHON) -> tuple[dict, np.ndarray, np.ndarray]:
    """(reference.json, ids (chars + 1,), parity logits (parity_chars, V)) from reference_outputs.py."""
    tmp = Path(tempfile.mkdtemp(prefix="peers_ref_"))
    cmd = [main_python, str(HERE / "reference_outputs.py"), "--model", model, "--chars", str(chars),
           "--parity-chars", str(parity_chars), "--out", str(tmp)] + (["--no-latency"] if no_latency else [])
    subprocess.run(cmd, check=True, cwd=ROOT)
    ref = json.loads((tmp / "reference.json").read_text())
    ref["command"] = " ".join([".venv/bin/python", "benchmarks/peers/reference_outputs.py", *cmd[2:]])
    return ref, np.load(tmp / "ids.npy"), np.load(tmp / "parity_logits.npy")


def rnnslim_int8_latency_ms(model: str, main_python: str = MAIN_PYTHON) -> float:
    """One timing of rnnslim's int8 C kernel streaming step (ms, batch 1, 1 thread) in a child process."""
    cmd = [main_python, str(HERE / "reference_outputs.py"), "--model", model, "--out",
           tempfile.mkdtemp(prefix="peers_lat_"), "--latency-only"]
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=True)
    return json.loads(re.search(r"^LATENCY (\{.*\})$", p.stdout, re.M).group(1))["median_ms"]


def interleaved_latency(model: str, peer_timers: dict, rounds: int = 3, main_python: str = MAIN_PYTHON) -> dict:
    """Rounds of (rnnslim int8 C kernel, then every peer variant): `peer_timers` maps a variant to a
    function returning its step latency in ms, so each ratio compares numbers taken under the same load."""
    out_rounds = []
    for _ in range(rounds):
        rn = rnnslim_int8_latency_ms(model, main_python)
        out_rounds.append({"rnnslim_int8_c_kernel_ms": rn, "peer_ms": {v: float(f()) for v, f in peer_timers.items()},
                           "load_avg": list(os.getloadavg())})
    rn_med = float(np.median([r["rnnslim_int8_c_kernel_ms"] for r in out_rounds]))
    peer_med = {v: float(np.median([r["peer_ms"][v] for r in out_rounds])) for v in peer_timers}
    return {"rounds": out_rounds, "rnnslim_int8_median_ms": rn_med, "peer_median_ms": peer_med,
            "speedup_per_variant": {v: ms / rn_med for v, ms in peer_med.items()},
            "how": f"{rounds} rounds; each: rnnslim int8 C kernel (reference_outputs.py --latency-only, its own "
                   "Python / ctypes call included) then every peer variant; medians over rounds"}


def attach_latency(rows: list[dict], duel: dict, how: str) -> None:
    """Give every row timed in `duel` (interleaved_latency's result) its `latency`: the median over the
    rounds, the fastest and slowest round, the last round's load average and `how` it was timed."""
    for row in rows:
        v = row["variant"]
        if v in duel["peer_median_ms"]:
            per_round = [r["peer_ms"][v] for r in duel["rounds"]]
            row["latency"] = {"median_ms": duel["peer_median_ms"][v], "spread_ms": [min(per_round), max(per_round)],
                              "load_avg": duel["rounds"][-1]["load_avg"], "how": how}


# ---- provenance ---------------------------------------------------------------------------------------------

def versions(packages: tuple[str, ...]) -> dict:
    out = {"python": platform.python_version()}
    for p in packages:
        try:
            out[p] = md.version(p)
        except md.PackageNotFoundError:
            out[p] = None
    return out


def git_commit() -> str | None:
    p = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "benchmarks/peers"], capture_output=True,
                           text=True, cwd=ROOT).stdout.strip()
    return (p.stdout.strip() + ("+uncommitted benchmarks/peers" if dirty else "")) if p.returncode == 0 else None


def machine() -> dict:
    cpu = ""
    with contextlib.suppress(OSError):
        cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                    if ln.startswith("model name")), "")
    return {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform()}


def command_line() -> str:
    """How this script was run, with the venv named (e.g. 'peers-brevitas/bin/python benchmarks/peers/x.py ...')."""
    return " ".join([Path(sys.executable).parent.parent.name + "/bin/python",
                     str(Path(sys.argv[0]).resolve().relative_to(ROOT)), *sys.argv[1:]])


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def write_result(out: Path, model: str, result: dict) -> None:
    """Merge `result` under `model` into the JSON at `out`, atomically (other models' entries kept)."""
    data = json.loads(out.read_text()) if out.exists() else {}
    data[model] = result
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    os.replace(tmp, out)
