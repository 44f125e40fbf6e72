"""Fuzz the data readers: malformed corpora (charlm), classification and forecasting CSVs.

    python benchmarks/fuzz_data.py [--cases 300]

Each case writes one malformed data file (or folder) and builds the task on it in a forked
child (10 s timeout, address space +2 GiB): a task that builds is then asked for one
training batch. Outcomes: clear_error (ValueError / FileNotFoundError / UnicodeError with a
one-line message), ok (a usable task), traceback (any other exception), hang, memory
(MemoryError), crash (the child died). Writes benchmarks/results/fuzz_data.json.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, update_results  # noqa: E402

CLEAR = (ValueError, FileNotFoundError, UnicodeError, IsADirectoryError, PermissionError)


def _corpus_cases(rng: random.Random) -> list[tuple[str, str, bytes]]:
    text = ("To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n" * 40).encode()
    cases = [("empty", "charlm", b""), ("all NUL", "charlm", b"\0" * 5000), ("all newline", "charlm", b"\n" * 5000),
             ("one char", "charlm", b"a"), ("two chars", "charlm", b"ab"), ("binary", "charlm", bytes(range(256)) * 40),
             ("invalid utf-8", "charlm", text[:500] + b"\xff\xfe\xfd" + text[500:]), ("CRLF", "charlm",
                                                                                      text.replace(b"\n", b"\r\n")),
             ("one long line", "charlm", b"x" * 200000), ("BOM", "charlm", b"\xef\xbb\xbf" + text)]
    for i in range(120):
        b = bytearray(text)
        for _ in range(rng.randint(1, 40)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        cut = rng.randrange(1, len(b))
        cases.append((f"byte flips {i}", "charlm", bytes(b[:cut] if rng.random() < 0.3 else b)))
    return cases


def _csv(header: list[str], rows: list[list[str]]) -> bytes:
    return ("\n".join([",".join(header)] + [",".join(r) for r in rows]) + "\n").encode()


def _classify_rows(rng: random.Random, n_seq: int = 12, T: int = 8) -> list[list[str]]:
    return [[f"s{i}", str(t), f"{rng.gauss(0, 1):.4f}", f"{rng.gauss(0, 1):.4f}", "ab"[i % 2]]
            for i in range(n_seq) for t in range(T)]


def _mutate_table(rng: random.Random, header: list[str], rows: list[list[str]]):
    kind = rng.choice(["nan", "inf", "text", "huge", "empty cell", "missing column", "extra cell", "dup header",
                       "no rows", "blank lines", "quote", "header only", "negative", "unicode", "shuffle header"])
    rows = [list(r) for r in rows]
    header = list(header)
    r, c = rng.randrange(len(rows)), rng.randrange(len(header))
    if kind == "nan":
        rows[r][c] = "nan"
    elif kind == "inf":
        rows[r][c] = "inf"
    elif kind == "text":
        rows[r][c] = "hello"
    elif kind == "huge":
        rows[r][c] = "1e308"
    elif kind == "empty cell":
        rows[r][c] = ""
    elif kind == "missing column":
        header.pop(c)
    elif kind == "extra cell":
        rows[r].append("7")
    elif kind == "dup header":
        header[c] = header[(c + 1) % len(header)]
    elif kind == "no rows":
        rows = []
    elif kind == "blank lines":
        rows.insert(r, [""])
    elif kind == "quote":
        rows[r][c] = '"unterminated'
    elif kind == "header only":
        rows = []
    elif kind == "negative":
        rows[r][c] = "-1e9"
    elif kind == "unicode":
        rows[r][c] = "\u00e9\u4e2d"
    else:
        rng.shuffle(header)
    return kind, header, rows


def _table_cases(rng: random.Random, n: int) -> list[tuple[str, str, object]]:
    out = []
    for i in range(n):
        if i % 2 == 0:  # classification: a folder with NAME_TRAIN.csv / NAME_TEST.csv (long format)
            header = ["id", "t", "f0", "f1", "label"]
            kind, h, rows = _mutate_table(rng, header, _classify_rows(rng))
            test = _csv(header, _classify_rows(rng, 6))
            out.append((f"classify {kind} {i}", "classify", {"D_TRAIN.csv": _csv(h, rows), "D_TEST.csv": test}))
        else:  # forecasting: one CSV of numeric columns
            header = ["a", "b"]
            rows = [[f"{rng.gauss(0, 1):.3f}", f"{rng.gauss(0, 1):.3f}"] for _ in range(200)]
            kind, h, rows = _mutate_table(rng, header, rows)
            out.append((f"forecast {kind} {i}", "forecast", _csv(h, rows)))
    return out


def _child(task: str, path: str, conn) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (_LIMIT, _LIMIT))
    try:
        from rnnslim.tasks import make_task

        t = make_task(task, path)
        b = next(iter(t.batches("train", batch_size=4, seq_len=8)), None) if hasattr(t, "batches") else None
        conn.send(("ok", "" if b is not None else "no batch"))
    except MemoryError as e:
        conn.send(("memory", str(e)[:300]))
    except CLEAR as e:
        msg = str(e)
        conn.send(("clear_error" if msg and "\n" not in msg.strip() else "unclear_error", f"{type(e).__name__}: "
                   f"{msg[:300]}"))
    except Exception as e:  # noqa: BLE001 - the point is to see which
        conn.send(("traceback", f"{type(e).__name__}: {str(e)[:300]}"))


_LIMIT = 0


def run_case(task: str, path: Path, timeout: float) -> tuple[str, str, float]:
    parent, child = mp.Pipe(duplex=False)
    p = mp.get_context("fork").Process(target=_child, args=(task, str(path), child))
    t0 = time.perf_counter()
    p.start()
    if not parent.poll(timeout):
        p.kill()
        p.join()
        return "hang", f"no answer in {timeout} s", time.perf_counter() - t0
    out = parent.recv()
    p.join()
    return out[0], out[1], time.perf_counter() - t0


def main() -> None:
    global _LIMIT
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=300, help="table cases (classify + forecast)")
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    import importlib

    for mod in ("torch", "rnnslim.tasks"):  # imported before forking so the children share them
        importlib.import_module(mod)

    _LIMIT = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 + (2 << 30)
    rng = random.Random(args.seed)
    cases = _corpus_cases(rng) + _table_cases(rng, args.cases)
    classes: dict[str, int] = {}
    problems, slowest = [], 0.0
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fuzz_data_") as tmp:
        for i, (name, task, content) in enumerate(cases):
            d = Path(tmp) / f"c{i}"
            d.mkdir()
            if isinstance(content, dict):
                for f, b in content.items():
                    (d / f).write_bytes(b)
                path = d
            else:
                path = d / ("corpus.txt" if task == "charlm" else "series.csv")
                path.write_bytes(content)
            outcome, msg, sec = run_case(task, path, args.timeout)
            slowest = max(slowest, sec)
            classes[outcome] = classes.get(outcome, 0) + 1
            if outcome not in ("clear_error", "ok"):
                problems.append({"case": name, "task": task, "outcome": outcome, "message": msg})
            print(f"{outcome:13s} {name:36s} {msg[:90]}", flush=True)
    result = {"cases": len(cases), "classes": classes, "problems": problems, "slowest_case_s": round(slowest, 3),
              "timeout_s": args.timeout, "wall_s": round(time.perf_counter() - t_all, 1), "seed": args.seed,
              "goal": "0 traceback, 0 hang, 0 memory, 0 crash, 0 unclear_error"}
    update_results(RESULTS / "fuzz_data.json", "fuzz_data", result)
    print(classes)


if __name__ == "__main__":
    main()
