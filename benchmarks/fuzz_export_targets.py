"""Fuzz `rnnslim export` destinations and names (issue 19 section 3): an export writes only a new
path or an earlier rnnslim export; it never destroys its input, a model, or any file it did not
create (--force: an existing user file of a single-file format, never the input or a model).

Every case starts from a fresh copy of one sandbox tree: an int8 integer model `q` and a float
model `f` (tiny GRUs), another model directory, a loose reference-format pair, a user's files
and folders, earlier exports of every format (and an old-style C export without the marker),
a read-only folder. Families:
    target   every format x ~45 kinds of `--out` (new, nested, the input and paths inside it, other
             models, user files / folders, earlier exports, symlinks to all of these and dangling
             ones, a FIFO, /dev/null, '/', '.', '..', '', a file as parent, read-only parents,
             long and odd names, a planted symlink under the export's old temporary name), each
             with and without --force
    name     hostile `--name` values for c and c-fp32 (non-ASCII, 5,000 characters, separators, C
             keywords, empty, the core header's own name); an export that exits 0 must compile
Each case runs the CLI in a forked child (fuzz_child.in_child: timeout, memory limit; as `nobody`
for the read-only cases when run as root, since root writes anywhere). The sandbox is hashed before
and after (files: sha256, symlinks: target, folders). Classes:
    exported_ok   exit 0, an rnnslim export at --out, nothing else changed
    clear_error   exit 2, one `error:` line, nothing changed
    unclear_error exit 2 with a raw OS error / an "(unexpected ...)" line
    traceback     an exception escaped the CLI        hang / memory / crash   (fuzz_child)
    destroyed     an entry that existed before, outside what the export may replace, changed or vanished
    silent_change exit 0 but no export at --out, or an entry outside --out appeared (temporary files)
    broken_export exit 0 with C that does not compile (name family)
`expected` records whether the case should export or refuse; `surprises` lists the cases where the
outcome (exported_ok / clear_error) differs from it.

    .venv/bin/python benchmarks/fuzz_export_targets.py [--quick]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "quantize"))
import torch  # noqa: E402
from common import RESULTS, update_results  # noqa: E402
from fuzz_child import in_child  # noqa: E402

from rnnslim.export.destination import MARKER, is_rnnslim_file  # noqa: E402
from rnnslim.io.format import save_model  # noqa: E402
from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, SequenceModel  # noqa: E402

TIMEOUT_S = 180.0
MEM_LIMIT = 4 << 30
FORMATS = ("c", "c-fp32", "onnx", "onnx-int8", "torch")
NOBODY = 65534
NAMES = ["İstanbul", "名前", "café", "x" * 5000, "a" * 200, "../evil", "a/b", "/etc/passwd", "..", ".", "", " ",
         "\t", "int", "void", "static", "main", "1abc", "-rf", "rnnslim_core", "rnnslim_float_core", "model",
         "NULL", "__init__", "a b-c.d", "emoji😀", "\x07bell", "lib", "a\nb", "%s%n", "$(touch pwned)"]


# --- the sandbox ---------------------------------------------------------------------------------
def _float_model(seed: int) -> SequenceModel:
    torch.manual_seed(seed)
    spec = ModelSpec(cell="gru", input_kind=InputKind.EMBEDDING, input_size=6, embed_size=4,
                     layers=[LayerShape(hidden_size=8)], output_size=6)
    return SequenceModel(spec).eval()


def _cli(args: list[str]) -> tuple[int, str, str]:
    """Run the CLI in this process: (exit code, output, escaped exception or '')."""
    from typer.testing import CliRunner

    from rnnslim.cli import app

    r = CliRunner().invoke(app, args, catch_exceptions=True)
    escaped = "" if r.exception is None or isinstance(r.exception, SystemExit) else \
        f"{type(r.exception).__name__}: {r.exception}"[:400]
    return r.exit_code, r.output, escaped


def make_template(root: Path) -> None:
    """The tree every case starts from (cwd of the export: root/work)."""
    from test_int8_kernel import _integer_model

    save_model(_integer_model("gru", hidden=(8,), vocab=6, embed=4, out=6), root / "q")
    save_model(_float_model(0), root / "f")
    save_model(_float_model(1), root / "other")
    (root / "loose.json").write_text('{"cell": "gru", "hidden_size": 8}')
    (root / "loose.safetensors").write_bytes(b"not really weights")
    (root / "notes.txt").write_text("a user's notes\n")
    (root / "empty.txt").write_bytes(b"")
    (root / "userdir").mkdir()
    (root / "userdir" / "a.txt").write_text("keep me\n")
    (root / "emptydir").mkdir()
    (root / "work").mkdir()
    (root / "ro").mkdir()
    (root / "ro" / "keep.txt").write_text("read-only folder's file\n")
    os.chdir(root / "work")
    for fmt, model, out in (("c", "q", "prior_c"), ("c-fp32", "f", "prior_fp32"), ("onnx", "f", "prior.onnx"),
                            ("onnx-int8", "f", "prior_int8.onnx"), ("torch", "f", "prior.pt2")):
        code, output, escaped = _cli(["export", f"../{model}", "--format", fmt, "--out", f"../{out}", "--check", "0"])
        if code != 0:
            raise SystemExit(f"template export {fmt} failed: {output} {escaped}")
    shutil.copytree(root / "prior_c", root / "prior_c_user")
    (root / "prior_c_user" / "mine.txt").write_text("a user's file in an export\n")
    shutil.copytree(root / "prior_c", root / "oldstyle_c")
    (root / "oldstyle_c" / MARKER).unlink()  # an export from before the marker: model.json only
    os.chmod(root / "ro", 0o555)


# --- the cases -----------------------------------------------------------------------------------
# kind -> (out relative to work/, set-up to plant in the case tree, may each format write there?)
# "file" formats: onnx, onnx-int8, torch; "dir": c, c-fp32. `force_ok`: a plain user file that
# --force may replace (single-file formats only).
def target_kinds() -> list[tuple[str, str, str | None, dict]]:
    """(kind, out, setup, expect) with expect: {"file": bool, "dir": bool, "force_file": bool}."""
    new = {"file": True, "dir": True}
    no = {"file": False, "dir": False}
    kinds = [
        ("new", "out_new", None, new),
        ("new_nested", "deep/er/out_new", None, new),
        ("new_trailing_slash", "out_slash/", None, new),
        ("new_in_parent", "../out_up", None, new),
        ("new_absolute", "{root}/out_abs", None, new),
        ("new_via_symlinked_parent", "linkdir/out_new", "link:linkdir->../emptydir", new),
        ("new_space_unicode", "out ümlaut é", None, new),
        ("new_leading_dash", "-out", None, new),
        ("new_newline", "out\nline", None, new),
        ("new_255_bytes", "y" * 255, None, no),
        ("new_long_name", "x" * 220, None, no),
        ("new_long_path", "/".join(["d" * 200] * 25) + "/out", None, no),
        ("input_dir", "../{input}", None, no),
        ("input_json", "../{input}/model.json", None, no),
        ("input_weights", "../{input}/model.safetensors", None, no),
        ("inside_input", "../{input}/step_out", None, no),
        ("inside_input_nested", "../{input}/sub/step_out", None, no),
        ("input_via_dotdot", "../work/../{input}", None, no),
        ("other_model_dir", "../other", None, no),
        ("other_model_json", "../other/model.json", None, no),
        ("other_model_weights", "../other/model.safetensors", None, no),
        ("inside_other_model", "../other/step_out", None, no),
        ("loose_reference_json", "../loose.json", None, no),
        ("loose_reference_weights", "../loose.safetensors", None, no),
        ("user_file", "../notes.txt", None, {"file": False, "dir": False, "force_file": True}),
        ("user_empty_file", "../empty.txt", None, {"file": False, "dir": False, "force_file": True}),
        ("user_dir", "../userdir", None, no),
        ("empty_dir", "../emptydir", None, {"file": False, "dir": True}),
        ("prior_c", "../prior_c", None, {"file": False, "dir": True}),
        ("prior_fp32", "../prior_fp32", None, {"file": False, "dir": True}),
        ("prior_c_with_user_file", "../prior_c_user", None, no),
        ("oldstyle_c_export", "../oldstyle_c", None, no),
        ("prior_onnx", "../prior.onnx", None, {"file": True, "dir": False}),
        ("prior_onnx_int8", "../prior_int8.onnx", None, {"file": True, "dir": False}),
        ("prior_pt2", "../prior.pt2", None, {"file": True, "dir": False}),
        ("file_in_prior_c", "../prior_c/model.json", None, no),  # its marker would no longer list what it holds
        ("symlink_to_user_file", "ln_notes", "link:ln_notes->../notes.txt", no),
        ("symlink_to_input_json", "ln_input", "link:ln_input->../{input}/model.json", no),
        ("symlink_to_input_dir", "ln_input_dir", "link:ln_input_dir->../{input}", no),
        ("symlink_to_prior_c", "ln_prior_c", "link:ln_prior_c->../prior_c", no),
        ("symlink_to_prior_onnx", "ln_prior_onnx", "link:ln_prior_onnx->../prior.onnx", no),
        ("dangling_symlink", "ln_dangling", "link:ln_dangling->../nowhere", no),
        ("symlink_loop", "ln_loop", "link:ln_loop->ln_loop", no),
        ("fifo", "a_fifo", "fifo:a_fifo", no),
        ("dev_null", "/dev/null", None, no),
        ("root", "/", None, no),
        ("cwd", ".", None, no),
        ("cwd_parent", "..", None, no),
        ("empty_string", "", None, no),
        ("parent_is_file", "../notes.txt/out", None, no),
        ("planted_temp_symlink", "out_planted", "planted", new),
        ("read_only_parent_new", "../ro/out_new", "nobody", no),
        ("read_only_parent_nested", "../ro/sub/out_new", "nobody", no),
    ]
    return kinds


def _plant(case: Path, setup: str | None, fmt: str) -> None:
    work = case / "work"
    if setup is None or setup == "nobody":
        return
    if setup.startswith("link:"):
        name, target = setup[5:].split("->")
        os.symlink(target.replace("{input}", _input(fmt)), work / name)
    elif setup.startswith("fifo:"):
        os.mkfifo(work / setup[5:])
    elif setup == "planted":  # the names the single-file exports used for their temporary files
        for suffix in (".tmp", ".fp32.tmp"):
            os.symlink("../notes.txt", work / f".out_planted{suffix}")


def _input(fmt: str) -> str:
    return "q" if fmt == "c" else "f"


def cases(quick: bool):
    """Yield (family, desc, args, out_text, setup, expected) for each case."""
    for kind, out, setup, exp in target_kinds():
        for fmt in FORMATS:
            for force in (False, True):
                text = out.replace("{input}", _input(fmt))
                kind_of = "dir" if fmt in ("c", "c-fp32") else "file"
                expected = exp[kind_of] or (force and kind_of == "file" and exp.get("force_file", False))
                args = ["export", f"../{_input(fmt)}", "--format", fmt, "--out", text, "--check", "3" if fmt == "c" else "0"]
                if force:
                    args.append("--force")
                yield "target", f"{kind} {fmt}{' --force' if force else ''}", args, text, setup, bool(expected)
        if quick:
            break
    for name in NAMES:
        for fmt in ("c", "c-fp32"):
            args = ["export", f"../{_input(fmt)}", "--format", fmt, "--out", "named_out", "--name", name,
                    "--check", "3" if fmt == "c" else "0"]
            yield "name", f"name {name[:40]!r} ({len(name)} chars) {fmt}", args, "named_out", None, None


# --- running and classifying ---------------------------------------------------------------------
def snapshot(root: Path) -> dict[str, str]:
    """{path relative to root: 'sha256:...' | 'link:target' | 'dir' | 'fifo' | 'other'} (links not followed)."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for n in dirs + files:
            p = Path(dirpath) / n
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = "link:" + os.readlink(p)
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = "dir"
            elif stat.S_ISREG(st.st_mode):
                out[rel] = "sha256:" + hashlib.sha256(p.read_bytes()).hexdigest()
            else:
                out[rel] = "fifo" if stat.S_ISFIFO(st.st_mode) else "other"
    return out


def _child(case: Path, args: list[str], as_nobody: bool) -> dict:
    """In the forked child: cwd case/work, optionally drop to `nobody`, run the CLI."""
    os.chdir(case / "work")
    os.environ["RNNSLIM_CACHE_DIR"] = str(case / "cache")
    if as_nobody:
        os.environ["HOME"] = str(case / "home")
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
    code, output, escaped = _cli(args)
    return {"class": "ran", "exit": code, "output": output[-600:], "escaped": escaped}


def _within(rel: str, top: str) -> bool:
    return rel == top or rel.startswith(top + os.sep)


def _export_at(path: Path, fmt: str) -> bool:
    if fmt in ("c", "c-fp32"):
        return path.is_dir() and (path / MARKER).is_file()
    return path.is_file() and is_rnnslim_file(path)


def _compiles(path: Path) -> bool:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return True
    sources = [p for p in path.glob("*.c")]
    r = subprocess.run([cc, "-std=c99", "-c", "-o", os.devnull, *map(str, sources)], cwd=path, capture_output=True,
                       timeout=120)
    return r.returncode == 0 and len(sources) == 1


def _resolved_out(work: Path, out_text: str) -> Path | None:
    """Where --out lands: its folder with symlinks resolved (a symlinked parent is a real place), its
    own name kept (a symlink at --out itself is what the export must not follow)."""
    if not out_text:
        return None
    p = Path(os.path.normpath(os.path.join(work, out_text)))
    if p == Path(p.anchor):
        return p
    return Path(os.path.realpath(p.parent)) / p.name


def run_case(template: Path, case: Path, family: str, args: list[str], out_text: str, setup: str | None,
             expected: bool | None) -> dict:
    fmt = args[args.index("--format") + 1]
    shutil.copytree(template, case, symlinks=True)
    _plant(case, setup, fmt)
    as_nobody = setup == "nobody" and os.geteuid() == 0
    if as_nobody:
        os.chmod(case, 0o755)
        for dirpath, dirs, files in os.walk(case):
            for n in [*dirs, *files, "."]:
                os.lchown(Path(dirpath) / n, NOBODY, NOBODY)
        (case / "home").mkdir()
        os.chown(case / "home", NOBODY, NOBODY)
    before = snapshot(case)
    res = in_child(_child, case, args, as_nobody, timeout=TIMEOUT_S, mem_limit=MEM_LIMIT)
    after = snapshot(case)
    if res["class"] != "ran":
        return res
    # what the export may change: --out and everything below it, when it was new or replaceable,
    # and the folders created on the way to a new --out
    out_abs = _resolved_out(case / "work", out_text)
    out_rel = os.path.relpath(out_abs, case) if out_abs is not None and str(out_abs).startswith(str(case)) else None
    free = set()
    if out_rel is not None and res["exit"] == 0:
        free = {k for k in set(before) | set(after) if _within(k, out_rel)}
        free |= {os.path.relpath(a, case) for a in out_abs.parents if str(a).startswith(str(case) + os.sep)}
    free |= {k for k in set(before) | set(after) if _within(k, "cache") or _within(k, "home")}
    destroyed = sorted(k for k in before if k not in free and after.get(k) != before[k])
    appeared = sorted(k for k in after if k not in before and k not in free)
    out = {"exit": res["exit"], "seconds": res.get("seconds", 0.0)}
    last = res["output"].strip().splitlines()[-1] if res["output"].strip() else ""
    if res["escaped"] or "Traceback" in res["output"]:
        out |= {"class": "traceback", "message": res["escaped"] or res["output"][-400:]}
    elif destroyed:
        out |= {"class": "destroyed", "paths": destroyed[:10], "message": last[:300]}
    elif res["exit"] == 0:
        if out_abs is None or not _export_at(out_abs, fmt) or appeared:
            out |= {"class": "silent_change", "appeared": appeared[:10], "message": last[:300]}
        elif family == "name" and not _compiles(out_abs):
            out |= {"class": "broken_export", "message": "exported C does not compile"}
        else:
            out |= {"class": "exported_ok"}
    elif res["exit"] == 2 and last.startswith("error: "):
        unclear = "(unexpected" in last or "Errno" in last
        out |= {"class": "unclear_error" if unclear else "clear_error", "message": last[:300]}
        if appeared:
            out |= {"class": "silent_change", "appeared": appeared[:10]}
    else:
        out |= {"class": "unclear_error", "message": res["output"][-300:]}
    if expected is not None and out["class"] in ("exported_ok", "clear_error"):
        out["surprise"] = (out["class"] == "exported_ok") != expected
    return out


def _remove(tree: Path) -> None:
    """rmtree, after making the read-only folders writable again."""
    for dirpath, dirs, _ in os.walk(tree):
        for d in dirs:
            if not os.path.islink(Path(dirpath) / d):
                os.chmod(Path(dirpath) / d, 0o755)
    shutil.rmtree(tree, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="one target kind and the names only (a smoke run)")
    ap.add_argument("--out", type=Path, default=RESULTS / "fuzz_export_targets.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="fuzz_export_targets_"))
    os.chmod(work, 0o755)
    here = os.getcwd()
    try:
        make_template(work / "template")
        os.chdir(here)
        counts, by_family, problems, surprises, samples = Counter(), {}, [], [], {}
        slowest, t0 = 0.0, time.perf_counter()
        for i, (family, desc, cli_args, out_text, setup, expected) in enumerate(cases(args.quick)):
            case = work / f"case{i}"
            res = run_case(work / "template", case, family, cli_args, out_text, setup, expected)
            cls = res["class"]
            counts[cls] += 1
            by_family.setdefault(family, Counter())[cls] += 1
            slowest = max(slowest, res.get("seconds", 0.0))
            if cls not in ("clear_error", "exported_ok"):
                problems.append({"family": family, "case": desc, **res})
            if res.get("surprise"):
                surprises.append({"case": desc, "class": cls, "message": res.get("message", "")})
            if cls == "clear_error" and desc.split()[0] not in samples:  # one refusal message per kind
                samples[desc.split()[0]] = f"{desc}: {res['message']}"
            print(f"{i:4d} {cls:14s} {res.get('seconds', 0):6.1f}s {desc[:70]!r}", flush=True)
            _remove(case)
        summary = {
            "cases": sum(counts.values()), "classes": dict(counts), "by_family": {k: dict(v) for k, v in by_family.items()},
            "formats": list(FORMATS), "target_kinds": len(target_kinds()), "names": len(NAMES),
            "timeout_s": TIMEOUT_S, "memory_limit_bytes_over_parent": MEM_LIMIT, "ran_as_root": os.geteuid() == 0,
            "slowest_case_s": round(slowest, 2), "wall_s": round(time.perf_counter() - t0, 1),
            "problems": problems[:60], "surprises": surprises[:60], "sample_messages": samples,
            "goal": "0 traceback, 0 crash, 0 hang, 0 destroyed, 0 silent_change, 0 unclear_error, 0 broken_export",
        }
        if not args.quick:
            update_results(args.out, "fuzz_export_targets", summary)
        print(json.dumps({k: summary[k] for k in ("cases", "classes", "slowest_case_s", "wall_s")}, indent=1))
        for p in problems[:40]:
            print(p)
        for s in surprises[:40]:
            print("surprise", s)
    finally:
        os.chdir(here)
        _remove(work)


if __name__ == "__main__":
    main()
