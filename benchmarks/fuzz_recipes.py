"""Fuzz the recipe loader (and, for a sample, `rnnslim compress`) with malformed recipes.

    .venv/bin/python benchmarks/fuzz_recipes.py [--n 1200] [--cli-sample 24] [--seed 0]

Each case is a valid recipe with one or more mutations (wrong types, huge / negative /
inf / nan values, unknown keys, deep nesting, YAML aliases, long strings, wrong stage
kinds, broken top level). Outcomes:
  clear_error  RecipeError (in process) / exit 2 with one `error:` line (command line)
  traceback    any other exception / a Python traceback on stderr
  hang         load_recipe over 5 s / the command over its 10 s timeout on a rejected recipe
  accepted     the recipe loads (the command finishes, or - accepted_slow - is still
               running a legitimately long but bounded stage at the timeout)
Results: benchmarks/results/fuzz_recipes.json (key "fuzz_recipes").
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, update_results  # noqa: E402

BASES = [
    [{"kind": "finetune", "max_steps": 2, "lr": 0.001}],
    [{"kind": "cast", "dtype": "bf16"}],
    [{"kind": "prune", "sparsity": 0.5}],
    [{"kind": "prune_nm", "n": 2, "m": 4}],
    [{"kind": "prune_units", "ratio": 0.5}],
    [{"kind": "remove_layers", "layers": [1]}],
    [{"kind": "int8_dynamic"}],
    [{"kind": "prune_block", "sparsity": 0.5, "block_rows": 4, "block_cols": 4}],
]
FIELDS = ["lr", "max_steps", "m", "n", "sparsity", "batch_size", "seq_len", "dtype", "layers", "calibration_batches",
          "finetune_steps", "ratio", "round_to", "block_rows", "warmup_steps", "eval_every", "kind", "refit_batches"]
BAD_VALUES = ["abc", "", [], {}, True, False, None, [1, [2, [3]]], {"a": {"b": 1}}, 0, -1, -10**9, 10**9, 10**20,
              2**63, 10**30, 1e300, -1e300, 1e-300, float("inf"), float("-inf"), float("nan"), 0.5, -0.5, 1.5,
              "x" * 100_000, "1e3", [5], [-1], [10**12], ["lstm[9]"], 3.7]
KINDS = ["nope", "", "FINETUNE", "finetune ", "x" * 5000, 7, None, ["cast"], {"k": 1}, "prune_unitz"]
TOP = {"version": [None, 2, "1", 1.0, True, [1], "x" * 1000], "name": ["", "x" * 10_000_000, "x" * 201, "../etc",
       "a\nb", 5, None, ["n"], "é" * 300, "\0"], "seed": [-1, 10**30, 1.5, "s", None, float("nan")],
       "measure": [{"steps": 10**12}, {"threads": 0}, {"repeats": float("inf")}, {"zzz": 1}, "fast", []],
       "task": [{"name": ""}, {"name": "charlm", "options": {"max_chars": 1e400}}, {"x": 1}, "charlm", 5]}


def deep(n: int, flow: str = "[") -> str:
    close = {"[": "]", "{a: ": "}"}[flow]
    return flow * n + ("1" if flow != "[" else "") + close * n


def laughs(levels: int = 9) -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        p, c = chr(96 + i), chr(97 + i)
        lines.append(f"{c}: &{c} [" + ",".join([f"*{p}"] * 9) + "]")
    return "version: 1\nname: x\n" + "\n".join(lines) + "\nstages:\n  - kind: cast\n    dtype: bf16\n"


def dump(data) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=10**9)


def make_cases(n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    cases: list[tuple[str, str]] = []
    raw = [("deep_seq", "version: 1\nname: x\nstages: " + deep(10_000) + "\n"),
           ("deep_map", "version: 1\nname: x\nstages: " + deep(3000, "{a: ") + "\n"),
           ("deep_block", "version: 1\nname: x\nstages:\n" + "".join("  " * i + "- \n" for i in range(2000))),
           ("aliases", laughs()), ("alias_small", "x: &v 3\nversion: 1\nname: x\nstages: [{kind: finetune, max_steps: *v}]\n"),
           ("not_yaml", "version: 1\nname: [\n"), ("tab", "version: 1\n\tname: x\n"), ("binary", "\0\1\2"),
           ("python_tag", "!!python/object/apply:os.system [ls]\n"), ("empty", ""), ("list_top", "- 1\n"),
           ("scalar_top", "42\n"), ("huge_file", "version: 1\nname: x\n# " + "z" * 2_000_000 + "\nstages: []\n"),
           ("timestamp", "version: 1\nname: 2001-02-03\nstages: [{kind: cast, dtype: bf16}]\n"),
           ("bad_timestamp", "version: 1\nname: x\nseed: 2001-13-45\nstages: [{kind: cast}]\n"),
           ("binary_tag", "version: !!binary aGk=\nname: x\nstages: [{kind: cast}]\n"),
           ("set_tag", "version: 1\nname: x\nstages: [!!set {a, b}]\n"),
           ("inf_text", "version: 1\nname: x\nstages: [{kind: finetune, max_steps: 1, lr: .inf}]\n"),
           ("nan_text", "version: 1\nname: x\nstages: [{kind: finetune, max_steps: 1, lr: .nan}]\n"),
           ("big_float_text", "version: 1\nname: x\nstages: [{kind: finetune, max_steps: 1e20}]\n"),
           ("dup_key", "version: 1\nname: x\nname: y\nstages: [{kind: cast, dtype: bf16}]\n"),
           ("complex_key", "version: 1\nname: x\n? [a, b]\n: 1\nstages: [{kind: cast}]\n")]
    cases += raw
    while len(cases) < n:
        stages = [dict(s) for s in rng.choice(BASES)]
        data = {"version": 1, "name": "fuzz", "stages": stages}
        kind = rng.random()
        if kind < 0.55:  # field mutation(s)
            label = []
            for _ in range(rng.randint(1, 3)):
                f, v = rng.choice(FIELDS), rng.choice(BAD_VALUES)
                stages[0][f] = v
                label.append(f"{f}={type(v).__name__}")
            tag = "field:" + ",".join(label)
        elif kind < 0.65:
            stages[0]["kind"] = rng.choice(KINDS)
            tag = "kind"
        elif kind < 0.75:
            stages[0]["z" * rng.randint(1, 300)] = rng.choice(BAD_VALUES)
            tag = "unknown_key"
        elif kind < 0.9:
            key = rng.choice(list(TOP))
            data[key] = rng.choice(TOP[key])
            tag = f"top:{key}"
        elif kind < 0.95:
            data["stages"] = rng.choice([[], {}, "cast", [[]], [None], [1, 2], None, [{"kind": "cast"}] * 500])
            tag = "stages"
        else:
            data.pop(rng.choice(["version", "name", "stages"]))
            tag = "missing"
        try:
            cases.append((tag, dump(data)))
        except (yaml.YAMLError, ValueError):
            continue
    return cases[:n]


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout


def classify_load(text: str, tmp: Path) -> tuple[str, str]:
    from rnnslim.pipeline.recipe import RecipeError, load_recipe

    p = tmp / "r.yaml"
    p.write_text(text, encoding="utf-8", errors="surrogatepass")
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(5)
    try:
        load_recipe(p)
        return "accepted", ""
    except RecipeError as e:
        msg = str(e)
        return ("clear_error" if len(msg) <= 2000 else "traceback"), msg[:160]
    except _Timeout:
        return "hang", ""
    except BaseException as e:  # noqa: BLE001
        return "traceback", f"{type(e).__name__}: {str(e)[:160]}"
    finally:
        signal.alarm(0)


def tiny_model(tmp: Path) -> tuple[Path, Path]:
    text = tmp / "t.txt"
    text.write_text("abcdefg hijklmnop qrstuv wxyz. " * 200)
    subprocess.run([sys.executable, "-m", "rnnslim.cli", "train", "--out", str(tmp / "m"), "--data", str(text),
                    "--hidden", "8", "--layers", "2", "--max-steps", "2", "--batch-size", "4", "--seq-len", "8"],
                   check=True, capture_output=True, timeout=120)
    return tmp / "m", text


def classify_cli(text: str, accepted: bool, model: Path, data: Path, tmp: Path, i: int) -> tuple[str, str]:
    rec = tmp / f"c{i}.yaml"
    rec.write_text(text, encoding="utf-8", errors="surrogatepass")
    cmd = [sys.executable, "-m", "rnnslim.cli", "compress", str(model), "--recipe", str(rec), "--out",
           str(tmp / f"o{i}"), "--data", str(data)]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=10, env={**os.environ, "RNNSLIM_DEBUG": ""})
    except subprocess.TimeoutExpired:
        return ("accepted_slow" if accepted else "hang"), ""
    errs = [ln for ln in r.stderr.splitlines() if ln.startswith("error: ")]
    if "Traceback" in r.stderr or r.returncode not in (0, 2):
        return "traceback", r.stderr[-300:]
    if r.returncode == 0:
        return "accepted", ""
    return ("clear_error" if len(errs) == 1 else "traceback"), (errs[0][:160] if errs else r.stderr[-200:])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1200)
    ap.add_argument("--cli-sample", type=int, default=24)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    cases = make_cases(args.n, args.seed)
    counts, by_tag, bad, accepted = Counter(), {}, [], []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for tag, text in cases:
            outcome, msg = classify_load(text, tmp)
            counts[outcome] += 1
            by_tag.setdefault(tag.split(":")[0], Counter())[outcome] += 1
            if outcome in ("traceback", "hang"):
                bad.append({"tag": tag, "outcome": outcome, "detail": msg, "recipe": text[:300]})
            accepted.append(outcome == "accepted")
        load_s = time.perf_counter() - t0
        cli_counts, cli_bad = Counter(), []
        if args.cli_sample:
            model, data = tiny_model(tmp)
            rng = random.Random(args.seed + 1)
            idx = rng.sample(range(len(cases)), min(args.cli_sample, len(cases)))
            for j, i in enumerate(idx):
                tag, text = cases[i]
                outcome, msg = classify_cli(text, accepted[i], model, data, tmp, j)
                cli_counts[outcome] += 1
                if outcome in ("traceback", "hang"):
                    cli_bad.append({"tag": tag, "outcome": outcome, "detail": msg, "recipe": text[:300]})
                print(f"cli {j + 1}/{len(idx)} {tag}: {outcome}", file=sys.stderr, flush=True)
    result = {"cases": len(cases), "load_recipe": dict(counts), "load_recipe_s": round(load_s, 2),
              "by_mutation": {k: dict(v) for k, v in sorted(by_tag.items())}, "failures": bad[:50],
              "cli_sample": {"cases": sum(cli_counts.values()), "timeout_s": 10, **dict(cli_counts)},
              "cli_failures": cli_bad[:20], "seed": args.seed}
    update_results(RESULTS / "fuzz_recipes.json", "fuzz_recipes", result)
    print({k: result[k] for k in ("cases", "load_recipe", "load_recipe_s", "cli_sample")})
    print(f"failures: {len(bad)} in process, {len(cli_bad)} on the command line; see {RESULTS / 'fuzz_recipes.json'}")


if __name__ == "__main__":
    main()
