"""Fuzz the search's journal storage and budget strings (issue 19 section 6): every case must
end in a clear error naming the file or term, a recovered study, or a correct open; no
tracebacks, hangs, or user files changed.

Journal cases open a mutated copy of a real journal (a study with finished trials, written
through rnnslim's storage) with `open_storage`, list its trials, write one record and open it
again: truncations at random offsets (each leaves a torn last record), bit flips, inserted
garbage lines, and other files passed as --storage (text, JSON, binary, empty, directories,
symlinks, FIFOs, devices, a stray `.lock`, a dead writer's lock). A sample runs `rnnslim
search --n-trials 0` on them (the CLI joins the study and measures nothing new). Budget cases
parse random strings (terms, numbers, units, signs, huge digits, NaN/inf, unicode) and
resolve them against an input model; a sample goes through `rnnslim search --budget`.
Each case runs in a forked child with a timeout and an address-space limit. Classes:
    clear_error    StorageError / BudgetError (CLI: exit 2, one `error:` line) naming the file or term
    recovered      a torn last record dropped with a TornRecordWarning; the study equals the
                   replay of the complete records, and a record written after it reads back
    ok             opened (or parsed) correctly; for truncations at a record boundary, the
                   study equals the replay of the records kept (a cut inside the first 11 bytes
                   of a journal, `{"op_code"` incomplete, is refused as not a journal: by design,
                   `{` alone is not taken for a torn record)
    opened_flipped a bit flip inside a value that still replays: journals carry no checksum,
                   so the study differs from the original (documented, not a defect)
    traceback      any other exception (or a CLI exit other than 0/2)   hang  no answer in time
    unclear_error  a clear error that does not name the file / term, or spans lines
    silent_change  opened without a warning but the study is not the replay of its records
    meaningless_cap a budget accepted whose resolved cap is out of range (a cap of 0, a negative loss)
    user_file_changed a file that is not a journal was modified (bytes, type or directory listing)

    .venv/bin/python benchmarks/fuzz_search.py [--seed 0] [--n-trunc 120] [--n-flip 100] [--n-budget 260]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import stat
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import optuna  # noqa: E402
import torch  # noqa: E402
from common import RESULTS, update_results  # noqa: E402
from fuzz_child import in_child as _in_child  # noqa: E402
from fuzz_recipes import tiny_model  # noqa: E402  (a 2 x 8 LSTM trained 2 steps by the CLI)
from typer.testing import CliRunner  # noqa: E402

from rnnslim.cli import app  # noqa: E402
from rnnslim.search import journal  # noqa: E402
from rnnslim.search.budget import LATENCY_MS, MAX_BYTES, MIN_BYTES, Budget, BudgetError  # noqa: E402
from rnnslim.search.journal import StorageError, TornRecordWarning  # noqa: E402
from rnnslim.search.storage import open_storage  # noqa: E402

TIMEOUT_S = 30.0  # a dead writer's lock is broken after journal.LOCK_GRACE_S (set to 3 s here)
MEM_LIMIT = 2 << 30
LOCK_GRACE_S = 3
STUDY = "rnnslim-search"
BASELINE = {"loss": 1.5, "bytes": 2_000_000, "latency_ms": 0.2}


def in_child(fn, *args) -> dict:
    return _in_child(fn, *args, timeout=TIMEOUT_S, mem_limit=MEM_LIMIT)


# --- journals ---------------------------------------------------------------------------------------------
def study_state(storage) -> dict:
    """What a study holds, comparable across storages: user attrs and every trial's state, params, values."""
    study = optuna.load_study(study_name=STUDY, storage=storage)
    trials = [[t.number, t.state.name, sorted(t.params.items()), t.values, sorted(t.user_attrs.items())]
              for t in study.get_trials(deepcopy=False)]
    return json.loads(json.dumps({"attrs": sorted(study.user_attrs.items()), "trials": trials}, default=str))


def replay_reference(data: bytes, work: Path) -> dict | None:
    """The study that the complete records of `data` hold, replayed by plain Optuna (None: none)."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    keep = data[: data.rfind(b"\n") + 1]
    ref = work / "reference.log"
    ref.write_bytes(keep)
    try:
        return study_state(JournalStorage(JournalFileBackend(str(ref))))
    except Exception:  # noqa: BLE001 - the study record itself was cut off
        return None
    finally:
        ref.unlink()


def open_journal_case(path: str, reference: dict | None, expect_torn: bool) -> dict:
    """Open, read, write one record, reopen; classify."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            storage = open_storage(path, Path(path).parent)
            try:
                state = study_state(storage)
            except KeyError:  # the study's own record was torn off: a journal without it
                state = None
            optuna.create_study(storage=storage, study_name="fuzz-probe", load_if_exists=True).set_user_attr("p", 1)
            again = open_storage(path, Path(path).parent)
            probe_ok = optuna.load_study(study_name="fuzz-probe", storage=again).user_attrs.get("p") == 1
        except (StorageError, ValueError) as e:
            msg = str(e)
            named = isinstance(e, StorageError) and path in msg and "\n" not in msg
            return {"class": "clear_error" if named else "unclear_error", "message": msg[:300]}
    torn = any(issubclass(w.category, TornRecordWarning) for w in caught)
    if not probe_ok:
        return {"class": "silent_change", "message": "a record written after opening did not read back"}
    if torn:
        return {"class": "recovered" if reference is None or state == reference else "silent_change",
                "message": next(str(w.message) for w in caught if issubclass(w.category, TornRecordWarning))[:300]}
    if reference is not None and state != reference:
        return {"class": "opened_flipped" if not expect_torn else "silent_change", "message": "study differs"}
    return {"class": "ok"}


def make_journal(path: Path) -> None:
    """A study like a search's: user attrs, finished, failed and running trials."""
    storage = open_storage(str(path), path.parent)
    study = optuna.create_study(storage=storage, study_name=STUDY, directions=["minimize", "minimize"])
    study.set_user_attr("rnnslim_baseline", BASELINE)
    for i in range(6):
        t = study.ask()
        t.suggest_int("width_l0", 4, 64)
        t.suggest_categorical("bits", [4, 8])
        t.set_user_attr("result", {"fidelity": "full", "bytes": 1000 + i})
        if i == 4:
            study.tell(t, state=optuna.trial.TrialState.FAIL)
        elif i < 5:
            study.tell(t, [1.0 + i / 10, 1000.0 + i])


def journal_cases(base: bytes, rng: random.Random, n_trunc: int, n_flip: int):
    """(family, description, bytes of the journal, expect_torn)."""
    starts = [0] + [i + 1 for i, b in enumerate(base) if b == 0x0A]
    for _ in range(n_trunc):
        cut = rng.randrange(1, len(base))
        yield "truncate", f"journal[:{cut}]", base[:cut], cut not in starts
    for start in starts[-3:-1]:  # exactly at record boundaries
        yield "truncate", f"journal[:{start}] (record boundary)", base[:start], False
    for _ in range(n_flip):
        i = rng.randrange(len(base))
        b = bytearray(base)
        b[i] ^= 1 << rng.randrange(8)
        yield "bit_flip", f"flip bit of byte {i}", bytes(b), False
    lines = base.splitlines(keepends=True)
    garbage = [b"\n", b"hello\n", b"{}\n", b"[1, 2]\n", b'{"op_code": 2}\n', b'{"op_code":99,"worker_id":"w"}\n',
               b'{"op_code":"0","worker_id":"w"}\n', b'{"op_code":4,"worker_id":7}\n', b"\xff\xfe\x00\n",
               b'{"op_code":2,"worker_id":"w","study_id":0,"user_attr":{"a":NaN}}\n',
               b'{"op_code":0,"worker_id":"w","study_name":"x","directions":[7]}\n',
               b'{"op_code":6,"worker_id":"w","trial_id":"x","state":1}\n', b"\x00" * 64 + b"\n"]
    for g in garbage:
        for where in (1, len(lines) // 2, len(lines)):
            yield "garbage_line", f"insert {g[:24]!r} before line {where}", b"".join(lines[:where] + [g] + lines[where:]), \
                False
    for tail in (b"hello", b"\x00\x00", b"[1", b'{"op_co', b'{"op_code":2,"worker_id":"w","stu', b"\xff"):
        yield "garbage_tail", f"append {tail!r} without a newline", base + tail, tail.startswith(b'{"op')
    yield "garbage_line", "a CRLF journal", base.replace(b"\n", b"\r\n"), False


def other_file_cases(base: bytes, rng: random.Random):
    """(kind, content-or-None): files that are not journals, passed as --storage."""
    texts = [b"my notes\n", b"line one\nline two\n", "caf\u00e9 \u2603\n".encode(), b"x", b"\n", b"\n\n\n",
             b"# a yaml file\nbytes: 1/20\n", b'{"a": 1}\n', b'{"op_code": 0}\n', b'[{"op_code":0}]\n',
             b'{"op_code":0,"worker_id":"w"} trailing\n', b"{\"op_code\":0,\"worker_id\":\"w\",\"study_name\":\"s\",",
             b'{"op_code":0,', b"{", b"\xef\xbb\xbf" + base, b"\x89PNG\r\n\x1a\n" + bytes(200), b"a" * (8 << 20)]
    for t in texts:
        yield "file", t
    for _ in range(24):
        yield "file", bytes(rng.randrange(256) for _ in range(rng.randrange(1, 2000)))
    for kind in ("dir", "dir_with_journal_name", "fifo", "symlink_to_text", "symlink_to_journal", "dangling_symlink",
                 "symlink_to_fifo", "dev_null", "dev_zero", "parent_is_a_file", "name_too_long", "lock_is_a_file",
                 "lock_is_a_dir", "dead_writers_lock_relative", "dead_writers_lock_absolute", "unicode_name",
                 "empty_file"):
        yield kind, None


def materialize_other(case: Path, kind: str, content: bytes | None, base: bytes) -> str:
    """Set up one other-file case under `case`; the --storage path."""
    case.mkdir(parents=True)
    p = case / "notes.txt"
    if kind == "file":
        p.write_bytes(content)
    elif kind == "dir":
        p.mkdir()
    elif kind == "dir_with_journal_name":
        p = case / "journal.log"
        p.mkdir()
    elif kind == "fifo":
        os.mkfifo(p)
    elif kind == "symlink_to_text":
        (case / "real.txt").write_bytes(b"my notes\n")
        os.symlink(case / "real.txt", p)
    elif kind == "symlink_to_journal":
        (case / "real.log").write_bytes(base)
        os.symlink(case / "real.log", p)
    elif kind == "dangling_symlink":
        os.symlink(case / "missing.txt", p)
    elif kind == "symlink_to_fifo":
        os.mkfifo(case / "fifo")
        os.symlink(case / "fifo", p)
    elif kind in ("dev_null", "dev_zero"):
        os.symlink("/dev/" + kind[4:], p)
    elif kind == "parent_is_a_file":
        (case / "file").write_bytes(b"keep\n")
        p = case / "file" / "journal.log"
    elif kind == "name_too_long":
        p = case / ("j" * 300 + ".log")
    elif kind == "lock_is_a_file":
        p.write_bytes(base)
        (case / "notes.txt.lock").write_bytes(b"mine\n")
    elif kind == "lock_is_a_dir":
        p.write_bytes(base)
        (case / "notes.txt.lock").mkdir()
    elif kind.startswith("dead_writers_lock"):
        p.write_bytes(base + b'{"op_code":2,"worker_id":"w","stu')  # killed inside the lock, mid-write
        target = "notes.txt" if kind.endswith("relative") else str(p)  # relative: dangles from case/
        os.symlink(target, case / "notes.txt.lock")
    elif kind == "unicode_name":
        p = case / "\u0130stanbul \u2603.log"
        p.write_bytes(base)
    elif kind == "empty_file":
        p.write_bytes(b"")
    return str(p)


def snapshot(case: Path) -> dict:
    """Every entry under `case`: type and bytes (FIFOs and devices by type only)."""
    out = {}
    for root, dirs, files in os.walk(case):
        for name in dirs + files:
            p = Path(root) / name
            st = os.lstat(p)
            if stat.S_ISREG(st.st_mode):
                out[str(p)] = ("file", p.read_bytes())
            elif stat.S_ISLNK(st.st_mode):
                out[str(p)] = ("link", os.readlink(p))
            else:
                out[str(p)] = (stat.S_IFMT(st.st_mode), None)
    return out


JOURNAL_KINDS = {"symlink_to_journal", "lock_is_a_file", "lock_is_a_dir", "dead_writers_lock_relative",
                 "dead_writers_lock_absolute", "unicode_name", "empty_file"}


def other_file_verdict(res: dict, kind: str, content: bytes | None, before: dict, after: dict) -> dict:
    """A non-journal file must be refused and left exactly as it was."""
    is_journal = kind in JOURNAL_KINDS or (kind == "file" and content == b"")
    if kind == "file" and content is not None and content.startswith(b'{"op_code":') and b"\n" not in content:
        is_journal = True  # a torn first record (documented: a journal a writer was killed in)
    opened = res["class"] in ("ok", "recovered", "opened_flipped")
    if before != after and not (opened and is_journal):  # a refusal changes nothing, journal or not
        return {**res, "class": "user_file_changed"}
    return res


# --- the CLI ----------------------------------------------------------------------------------------------
def cli(args: list[str]) -> dict:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = CliRunner().invoke(app, args)
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    if r.exit_code == 0:
        torn = any(issubclass(w.category, TornRecordWarning) for w in caught)
        return {"class": "recovered" if torn else "ok"}
    if r.exit_code == 2 and lines and lines[-1].startswith("error: ") and "Traceback" not in r.output \
            and "unexpected" not in lines[-1]:
        return {"class": "clear_error", "message": lines[-1][:300]}
    return {"class": "traceback", "message": f"exit {r.exit_code}: {r.output[-400:]}", "exc": repr(r.exception)[:300]}


def cli_search(model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return ["search", str(model), "--data", str(data), "--out", str(out), "--trials", "1", "--n-trials", "0",
            "--no-latency", "--eval-tokens", "100", "--json", *extra]


def cli_storage_case(model: Path, data: Path, out: Path, storage: str, named: str) -> dict:
    res = cli(cli_search(model, data, out, "--storage", storage))
    if res["class"] == "clear_error" and named not in res["message"]:
        res["class"] = "unclear_error"
    return res


# --- budgets ----------------------------------------------------------------------------------------------
KEYS = ["bytes", "latency_ms", "latency", "loss", "BYTES", "Loss", "latency-ms", "size", "", " loss ", "bytes\u200b",
        "l\u043ess"]
NUMBERS = ["1", "0", "-1", "2", "20", "0.5", "1.45", "16", "15", "650", "1e3", "1E-3", "1e400", "1e-400", "-0", "00",
           ".5", "5.", "1_000", "0x10", "nan", "NaN", "inf", "-inf", "+inf", "1" + "0" * 400, "9" * 5000,
           "0." + "0" * 400 + "1", "\u0661\u0662", "\uff11\uff12", "\u00b2", "1\u00a0", " 3 ", "1e", "e5", "--1",
           "+2", "-200", "-99.9", "1000", "1000.1", "-100", "3" * 100000]
UNITS = ["", "", "", "%", "kB", "MB", "KiB", "MiB", "GiB", "B", "b", "ms", "parsecs", " kB", "k B", "%%", "\u00b5s"]


def plausible_term(rng: random.Random) -> str:
    """A well-formed term whose value ranges over many magnitudes (accepted or refused on range)."""
    key = rng.choice(["bytes", "latency_ms", "loss"])
    mag = 10 ** rng.uniform(-9, 9)
    if key != "loss" and rng.random() < 0.4:
        value = f"{rng.randrange(0, 4)}/{rng.choice([rng.randrange(0, 100), 10 ** rng.randrange(0, 400)])}"
    elif key == "bytes":
        value = f"{int(mag)}{rng.choice(['', 'kB', 'KiB', 'MB', 'B'])}" if rng.random() < 0.8 else f"{mag:.3g}"
    elif key == "loss" and rng.random() < 0.6:
        value = f"{rng.choice(['+', '-', ''])}{10 ** rng.uniform(-2, 4):.4g}%"
    else:
        value = f"{mag:.4g}" if rng.random() < 0.7 else repr(mag)
    return f"{key}={value}"


def random_term(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return plausible_term(rng)
    key = rng.choice(KEYS)
    if rng.random() < 0.25:
        value = f"{rng.choice(NUMBERS)}/{rng.choice(NUMBERS)}"
    else:
        value = rng.choice(["", "+", "-"]) * (rng.random() < 0.3) + rng.choice(NUMBERS) + rng.choice(UNITS)
    sep = rng.choice(["=", "=", "=", "==", ":", " = ", ""])
    return f"{key}{sep}{value}"


def random_budget(rng: random.Random) -> str:
    terms = [random_term(rng) for _ in range(rng.choice([1, 1, 2, 3, 4]))]
    return rng.choice([",", ", ", ";", ",,"]).join(terms) + rng.choice(["", "", ",", " "])


def budget_cases(rng: random.Random, n: int) -> list[str]:
    fixed = ["loss=-200%", "bytes=1/" + "9" * 400, "bytes=1/" + "1" + "0" * 300, "bytes=1/20,loss=+2%",
             "bytes=650kB,latency_ms=0.2,loss=1.45", "latency=1/2", "loss=+1000%", "loss=-99.99%", "", ",", "=",
             "bytes=1/20,bytes=1/10", "loss=nan%", "latency_ms=1/1000000000000", "bytes=3/2", "bytes=1/1"]
    return fixed + [random_budget(rng) for _ in range(n - len(fixed))]


def caps_meaningful(caps: dict) -> bool:
    ok = {"loss": lambda v: 0 < v <= BASELINE["loss"] * 11 or 0 < v <= 1e6,
          "bytes": lambda v: MIN_BYTES <= v <= MAX_BYTES, "latency_ms": lambda v: LATENCY_MS[0] <= v <= LATENCY_MS[1]}
    return all(ok[k](v) for k, v in caps.items())


def budget_case(text: str) -> dict:
    try:
        budget = Budget.parse(text)
        caps = budget.resolve(BASELINE)
    except BudgetError as e:
        msg = str(e)
        clear = "\n" not in msg and (msg.startswith("budget") or "budget" in msg)
        return {"class": "clear_error" if clear else "unclear_error", "message": msg[:300]}
    if not caps_meaningful(caps):
        return {"class": "meaningless_cap", "message": json.dumps(caps)}
    if Budget.parse(budget.text()).resolve(BASELINE) != caps:
        return {"class": "silent_change", "message": f"text() {budget.text()!r} reads back otherwise"}
    return {"class": "ok"}


# --- main -------------------------------------------------------------------------------------------------
class Tally:
    def __init__(self) -> None:
        self.counts, self.by_family, self.problems, self.samples = Counter(), {}, [], {}
        self.slowest = 0.0

    GOOD = ("clear_error", "recovered", "ok", "opened_flipped")

    def add(self, family: str, desc: str, res: dict) -> None:
        cls = res["class"]
        self.counts[cls] += 1
        self.by_family.setdefault(family, Counter())[cls] += 1
        self.slowest = max(self.slowest, res.get("seconds", 0.0))
        if cls not in self.GOOD:
            self.problems.append({"family": family, "case": desc[:200], **res})
        elif cls in ("clear_error", "recovered") and len(self.samples.setdefault(family, [])) < 3:
            self.samples[family].append(res.get("message", "")[:300])
        elif cls == "ok" and family == "budget" and len(self.samples.setdefault("budget_accepted", [])) < 12:
            self.samples["budget_accepted"].append(desc)  # what a random string that parses looks like


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-trunc", type=int, default=120)
    ap.add_argument("--n-flip", type=int, default=100)
    ap.add_argument("--n-budget", type=int, default=260)
    ap.add_argument("--n-cli", type=int, default=12, help="journal and budget cases also run through the CLI (each)")
    ap.add_argument("--out", type=Path, default=RESULTS / "fuzz_search.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    journal.LOCK_GRACE_S = LOCK_GRACE_S  # the forked children inherit it
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="fuzz_search_"))
    tally = Tally()
    t0 = time.perf_counter()
    try:
        make_journal(work / "base.log")
        base = (work / "base.log").read_bytes()
        model, data = tiny_model(work)
        cli_base = work / "cli_base"
        res = cli(cli_search(model, data, cli_base))  # a study the CLI made: what the CLI sample mutates
        assert res["class"] == "ok", res
        cli_journal = (cli_base / "journal.log").read_bytes()

        for i, (family, desc, blob, expect_torn) in enumerate(journal_cases(base, rng, args.n_trunc, args.n_flip)):
            case = work / "cases" / f"j{i}"
            case.mkdir(parents=True)
            path = case / "journal.log"
            path.write_bytes(blob)
            reference = replay_reference(blob, case) if family == "truncate" else \
                replay_reference(base, case) if family == "bit_flip" else None
            tally.add(family, desc, in_child(open_journal_case, str(path), reference, expect_torn))
            shutil.rmtree(case, ignore_errors=True)

        for i, (kind, content) in enumerate(other_file_cases(base, rng)):
            case = work / "cases" / f"o{i}"
            storage = materialize_other(case, kind, content, base)
            before = snapshot(case)
            res = in_child(open_journal_case, storage, None, False)
            desc = kind if content is None else f"file {content[:24]!r} ({len(content)} bytes)"
            tally.add("other_file", desc, other_file_verdict(res, kind, content, before, snapshot(case)))
            shutil.rmtree(case, ignore_errors=True)

        # the CLI sample: torn, damaged and foreign journals, and other files, as --storage
        cli_cases = [("torn", cli_journal[:-rng.randrange(2, 40)]), ("damaged", cli_journal.replace(b"\n", b"\n{", 1)),
                     ("intact", cli_journal)]
        others = [(kind, content) for kind, content in other_file_cases(base, rng)
                  if kind not in JOURNAL_KINDS and kind not in ("dead_writers_lock_relative", "name_too_long")]
        for j, (kind, content) in enumerate(cli_cases + rng.sample(others, max(0, args.n_cli - len(cli_cases)))):
            case = work / "cases" / f"c{j}"
            if kind in ("torn", "damaged", "intact"):
                case.mkdir(parents=True)
                storage = str(case / "journal.log")
                Path(storage).write_bytes(content)
            else:
                storage = materialize_other(case, kind, content, base)
            before = snapshot(case)
            desc = f"cli {kind}" + ("" if content is None else f" {content[:24]!r}")
            res = in_child(cli_storage_case, model, data, cli_base, storage, storage)
            if kind not in ("torn", "damaged", "intact"):
                res = other_file_verdict(res, kind, content, before, snapshot(case))
            tally.add("cli_storage", desc, res)
            shutil.rmtree(case, ignore_errors=True)

        budgets = budget_cases(rng, args.n_budget)
        for text in budgets:
            tally.add("budget", text if len(text) < 120 else f"{text[:100]}... ({len(text)} chars)",
                      in_child(budget_case, text))
        for j, text in enumerate(rng.sample(budgets, min(args.n_cli, len(budgets)))):
            res = in_child(cli, cli_search(model, data, work / "cases" / f"b{j}", "--budget", text))
            tally.add("cli_budget", text[:120], res)
            shutil.rmtree(work / "cases" / f"b{j}", ignore_errors=True)

        total = sum(tally.counts.values())
        summary = {
            "cases": total, "classes": dict(tally.counts), "by_family": {k: dict(v) for k, v in tally.by_family.items()},
            "seed": args.seed, "timeout_s": TIMEOUT_S, "memory_limit_bytes_over_parent": MEM_LIMIT,
            "lock_grace_s_in_cases": LOCK_GRACE_S, "base_journal_bytes": len(base), "slowest_case_s": round(tally.slowest, 3),
            "wall_s": round(time.perf_counter() - t0, 1), "problems": tally.problems[:50],
            "sample_messages": tally.samples,
            "goal": "0 traceback, 0 hang, 0 crash, 0 user_file_changed, 0 silent_change, 0 meaningless_cap, "
                    "0 unclear_error",
        }
        update_results(args.out, "fuzz_search", summary)
        print(json.dumps({k: summary[k] for k in ("cases", "classes", "slowest_case_s", "wall_s")}, indent=1))
        for p in tally.problems[:30]:
            print(p)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
