"""Fuzz the torch-free runtime with hostile C exports (issue 19 section 4): every case must end
in a clear ExportError, or load and step bit for bit like the original; no tracebacks, crashes,
planted code run, or silent changes.

Bases: three exports of small fully integer int8 models (an LSTM on tokens, a GRU on 13
features, a delta LSTM whose state struct carries a delta state). Families:
    manifest_field  every manifest key set to hostile values (types, huge / negative / float
                    ints, bools, strings, ../ and absolute paths, unicode, lists, NaN) or deleted
    manifest_size   the sizes a caller's buffers depend on (outputs, state_len, state_bytes,
                    features, vocab, workspace) set to other valid-looking integers
    name            names with ../, absolute paths, NUL, unicode, 5000 characters, other cases;
                    with a library planted where a loader following the name would look
    files_map       the files map emptied, deleted, with entries missing, extra, renamed,
                    pointing outside (../, absolute), at model.json or a library, bad digests
    json_syntax     not JSON, not an object, deep nesting, NaN, duplicate keys, a BOM, 2 MB
    planted_library lib<NAME>.so (and other names) planted with and without a matching .sha256,
                    as a file or a symlink to one outside; its constructor writes a marker
    special_file    a listed file (or model.json) as a symlink (same bytes), a FIFO, a
                    directory, /dev/zero; the export directory missing or a file
    source_edit     byte flips, truncations and appended code in NAME.c / NAME.h /
                    rnnslim_core.h, the manifest's digests left as they were
    source_rehashed the same edits with the digests rewritten to match (what someone who can
                    write the whole directory can do): edits that break the build or the
                    sizes must be an ExportError; see rehashed_runs below
    truncate        model.json cut short
    tokens          hostile tokens / feature rows for step and run_sequence on a valid export
                    (TypeError / IndexError / ValueError naming the problem count as clear)
Each case loads the export in a forked child (timeout, address-space limit) and, when it loads,
runs a fixed input through `run` and `run_sequence`, compared with the original's bytes. Classes:
    clear_error       ExportError (tokens: TypeError / IndexError / ValueError), one line
    ok_identical      loaded, and every output and the final state are bit-identical
    traceback         any other exception      crash  the child died of a signal   hang  timeout
    planted_code_ran  a planted library's marker file appeared (checked after every case)
    silent_change     loaded and computed something else, from an export whose digests do not
                      vouch for the change
    rehashed_runs     (source_rehashed only) a consistent export whose sources AND digests were
                      rewritten: compiled and run as the new code it is. By design: the digests
                      detect damage and unrecorded edits, they do not authenticate an author;
                      an export directory is code, trusted like code

    .venv/bin/python benchmarks/fuzz_runtime.py [--seed 0] [--n-field 6] [--every 1]
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402
import torch  # noqa: E402
from common import RESULTS, update_results  # noqa: E402
from fuzz_child import in_child as _in_child  # noqa: E402
from fuzz_child import report  # noqa: E402

from rnnslim.export.c_source import export_c  # noqa: E402
from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, SequenceModel  # noqa: E402
from rnnslim.quantize.int8 import Int8Config, Int8Mode, quantize_int8_  # noqa: E402
from rnnslim.quantize.int8.delta import set_delta_threshold_  # noqa: E402
from rnnslim.runtime import ExportedModel, ExportError  # noqa: E402

TIMEOUT_S = 120.0  # a case that compiles (edited sources) on 2 busy cores
MEM_LIMIT = 2 << 30
MARKER_ENV = "RNNSLIM_FUZZ_MARKER"
VALUES = [None, True, False, -1, 0, 1, 3, 29, 2**31, 2**63, 10**30, 1e12, 5.9, 4.0, float("nan"), float("inf"),
          "5", "", "x", "../x", "/etc/passwd", "İstanbul", "a" * 5000, [], [1, 2], {}, {"a": 1}]
SIZE_KEYS = ("vocab", "outputs", "state_len", "state_bytes", "features", "workspace_fixed_bytes",
             "workspace_bytes_per_step", "scratch_bytes", "const_bytes", "ram_bytes")
HOSTILE_NAMES = ["../m", "/../../elsewhere/libx", "m/../m", "/tmp/m", "m\x00", "İ", "m" * 5000, "M", "m ", " m", "m.c",
                 "lib", "", "1m", "m-1", "m\nm", "..", ".", "m/", "\\m", "ｍ", "m" * 129, "m" * 128]
PLANT_NAMES = ["lib{n}.so", "{n}.so", "lib{n}.dylib", "librnnslim_export_{n}.so", "rnnslim_core.so", "lib.so",
               "libmodel.so"]


# --- bases ----------------------------------------------------------------------------------------------
def _quantized(spec: ModelSpec, calib) -> SequenceModel:
    torch.manual_seed(0)
    model = SequenceModel(spec).eval()
    return quantize_int8_(model, Int8Config(mode=Int8Mode.INTEGER), calibration=calib)


def make_bases(work: Path) -> list[dict]:
    """Exports of three small integer models, each with the input it is run on."""
    torch.manual_seed(0)
    tok = ModelSpec(cell="lstm", input_kind=InputKind.EMBEDDING, input_size=30, embed_size=16,
                    layers=[LayerShape(hidden_size=24), LayerShape(hidden_size=16)], output_size=29)
    feat = ModelSpec(cell="gru", input_kind=InputKind.LINEAR, input_size=13, embed_size=12,
                     layers=[LayerShape(hidden_size=20)], output_size=5)
    calib_tok = [torch.randint(0, 30, (40, 4)) for _ in range(2)]
    models = {"lstm_tokens": (_quantized(tok, calib_tok), "m"),
              "gru_features": (_quantized(feat, [2.0 * torch.randn(30, 4, 13) for _ in range(2)]), "kws"),
              "lstm_delta": (set_delta_threshold_(_quantized(tok, calib_tok), {0: 3, 1: 6}), "dm")}
    bases = []
    for kind, (model, name) in models.items():
        d = work / kind
        export_c(model, d, name=name)
        features = 13 if kind == "gru_features" else 0
        rng = np.random.default_rng(1)
        x = (2 * rng.standard_normal((9, 13))).astype(np.float32) if features else rng.integers(0, 30, 9)
        bases.append({"kind": kind, "dir": d, "name": name, "features": features, "input": x,
                      "files": {p.name: p.read_bytes() for p in d.iterdir() if p.is_file()}})
    return bases


def _outputs(directory: str, x) -> dict:
    """What a loaded export computes on `x`: hex bytes of run's logits and state, run_sequence's logits."""
    m = ExportedModel(directory)
    logits, state = m.run(x)
    seq = m.run_sequence(x)
    one = m.step(x[0] if m.features else int(x[0]), m.new_state()).copy()
    return {"run": logits.tobytes().hex(), "state": state.tobytes().hex(), "seq": seq.tobytes().hex(),
            "step": one.tobytes().hex()}


# --- planted code ---------------------------------------------------------------------------------------
def planted_library(work: Path, name: str) -> Path:
    """A library whose constructor writes the file named by $RNNSLIM_FUZZ_MARKER, exporting the
    symbols a loader of export `name` would look up (so nothing fails before the constructor)."""
    src = work / f"planted_{name}.c"
    syms = "\n".join(f"int {name}_{f}(void) {{ return 0; }}" for f in ("init", "reset", "step", "step_int", "run",
                                                                          "workspace_bytes", "info"))
    src.write_text(f"""#include <stdio.h>
#include <stdlib.h>
__attribute__((constructor)) static void planted(void) {{
    const char *p = getenv("{MARKER_ENV}");
    FILE *f = p ? fopen(p, "w") : NULL;
    if (f) {{ fputs("planted code ran", f); fclose(f); }}
}}
{syms}
""")
    lib = work / f"planted_{name}.so"
    subprocess.run([shutil.which("cc") or "gcc", "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)
    return lib


CONSTRUCTOR = ('\n#include <stdio.h>\n#include <stdlib.h>\n__attribute__((constructor)) static void fuzz_planted(void) '
               f'{{ const char *p = getenv("{MARKER_ENV}"); FILE *f = p ? fopen(p, "w") : NULL; if (f) fclose(f); }}\n')


# --- variants -------------------------------------------------------------------------------------------
def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def _manifest(base) -> dict:
    return json.loads(base["files"]["model.json"])


def _with(base, manifest: dict | None = None, raw: bytes | None = None, **files) -> dict:
    """The export's files with `files` replaced (bytes, or None to delete) and model.json set."""
    out = dict(base["files"])
    for k, v in files.items():
        k = k.replace("NAME", base["name"])
        if v is None:
            out.pop(k, None)
        else:
            out[k] = v
    if raw is not None:
        out["model.json"] = raw
    elif manifest is not None:
        out["model.json"] = json.dumps(manifest).encode()
    return out


def _rehashed(base, files: dict) -> dict:
    man = json.loads(files["model.json"])
    man["files"] = {f: _sha(files[f]) for f in man["files"] if f in files}
    return {**files, "model.json": json.dumps(man).encode()}


def variants(bases, rng: random.Random, n_field: int):
    """Yield (family, description, base, files, special) for each case."""
    for base in bases:
        man, name = _manifest(base), base["name"]
        c, h = f"{name}.c", f"{name}.h"
        # every key: hostile values and deletion
        for key in man:
            for v in rng.sample(VALUES, n_field):
                m = {**man, key: v}
                yield "manifest_field", f"{key} = {str(v)[:40]!r}", base, _with(base, m), None
            yield "manifest_field", f"delete {key}", base, _with(base, {k: v for k, v in man.items() if k != key}), None
        yield "manifest_field", "extra key", base, _with(base, {**man, "library": "libm.so"}), None
        # sizes a caller's buffers depend on: other plausible integers
        for key in SIZE_KEYS:
            for v in sorted({0, 1, max(0, man[key] - 1), man[key] + 1, 2 * man[key] + 8, 100000}):
                if v != man[key]:
                    yield "manifest_size", f"{key} = {v}", base, _with(base, {**man, key: v}), None
        # names
        for n in HOSTILE_NAMES:
            for plant in (False, True):
                renamed = {c: f"{n}.c", h: f"{n}.h"}
                m = {**man, "name": n, "files": {renamed.get(f, f): d for f, d in man["files"].items()}}
                yield "name", f"name = {n[:30]!r} planted={plant}", base, _with(base, m), (
                    ("plant_name", n) if plant else None)
        # the files map
        files_cases = {
            "empty": {}, "deleted": ..., "no NAME.c": {k: v for k, v in man["files"].items() if k != c},
            "extra model.json": {**man["files"], "model.json": _sha(base["files"]["model.json"])},
            "extra libNAME.so": {**man["files"], f"lib{name}.so": "0" * 64},
            "../ entry": {**{k: v for k, v in man["files"].items() if k != c}, f"../{c}": man["files"][c]},
            "absolute entry": {**{k: v for k, v in man["files"].items() if k != c}, f"/tmp/{c}": man["files"][c]},
            "uppercase digest": {**man["files"], c: man["files"][c].upper()},
            "short digest": {**man["files"], c: man["files"][c][:63]},
            "digest of another file": {**man["files"], c: man["files"][h]},
            "digest not a string": {**man["files"], c: 7},
            "list": list(man["files"]), "string": c, "null": None,
        }
        for desc, fm in files_cases.items():
            m = {k: v for k, v in man.items() if k != "files"} if fm is ... else {**man, "files": fm}
            yield "files_map", desc, base, _with(base, m), None
        # files map emptied while a source runs code at load time (the hazard of the issue)
        for fm in ({}, ...):
            m = {k: v for k, v in man.items() if k != "files"} if fm is ... else {**man, "files": fm}
            yield "files_map", f"files {'{}' if fm == {} else 'deleted'} + constructor in NAME.c", base, \
                _with(base, m, **{c: base["files"][c] + CONSTRUCTOR.encode()}), None
        # JSON syntax
        good = base["files"]["model.json"]
        dup = good[:-1].rstrip() + b', "outputs": 1}'
        for raw in (b"[]", b"1", b'"x"', b"null", b"{", b"", b"\xff\xfe", b"\xef\xbb\xbf" + good, b"[" * 100000,
                    good.replace(b'"outputs": ', b'"outputs": NaN, "x": '), dup, good + b" " * (2 << 20),
                    json.dumps([man]).encode(), good.replace(b"rnnslim-c-int8", b"rnnslim-c-fp32")):
            yield "json_syntax", f"model.json = {raw[:24]!r}", base, _with(base, raw=raw), None
        # planted libraries
        for pattern in PLANT_NAMES:
            for how in ("file+sha256", "file", "symlink+sha256", "symlink"):
                yield "planted_library", f"{pattern.format(n=name)} as {how}", base, dict(base["files"]), \
                    ("plant", pattern.format(n=name), how)
        # special files
        for target in (c, h, "rnnslim_core.h", "model.json"):
            for kind in ("symlink_same_bytes", "fifo", "directory", "dev_zero", "missing"):
                yield "special_file", f"{target} as {kind}", base, dict(base["files"]), ("special", target, kind)
        yield "special_file", "export directory missing", base, {}, ("no_dir",)
        yield "special_file", "export directory is a file", base, {}, ("dir_is_file",)
        # source edits, digests as they were / rewritten
        for f in (c, h, "rnnslim_core.h"):
            data = base["files"][f]
            edits = {"append constructor": data + CONSTRUCTOR.encode(), "append comment": data + b"\n/* edited */\n",
                     "truncate half": data[: len(data) // 2], "empty": b""}
            for _ in range(4):
                i = rng.randrange(len(data))
                flipped = bytearray(data)
                flipped[i] ^= 1 << rng.randrange(7)
                edits[f"flip byte {i}"] = bytes(flipped)
            for desc, new in edits.items():
                files = _with(base, **{f: new})
                yield "source_edit", f"{f}: {desc}", base, files, None
                yield "source_rehashed", f"{f}: {desc}", base, _rehashed(base, files), None
        # rehashed edits that change what a caller's buffers need: must disagree with the manifest
        text = base["files"][c].decode()
        model_line = next(ln for ln in text.splitlines() if ".cell =" in ln and ".O =" in ln)
        outputs = man["outputs"]
        for desc, new in (("model.O + 1", text.replace(model_line, model_line.replace(f".O = {outputs}",
                                                                                    f".O = {outputs + 1}"))),
                          ("model.state_len + 8", text.replace(".state_len = ", ".state_len = 8 + ", 1))):
            assert new != text, desc
            files = _with(base, **{c: new.encode()})
            yield "source_rehashed", f"{c}: {desc}", base, _rehashed(base, files), None
        # truncated manifests
        for frac in (0.0, 0.1, 0.5, 0.9, 0.99):
            yield "truncate", f"model.json[:{int(len(good) * frac)}]", base, _with(base, raw=good[:int(len(good) * frac)]), None
        # hostile inputs on a valid export
        if base["features"]:
            bad_inputs = ["nan row", "inf row", "wrong width", "flat", "strings", "float64 overflow", "3-d"]
        else:
            bad_inputs = [2**32 + 5, 5.9, "5", True, -1, 30, 2**63, None, [1.5, 2.5], [True, False], ["1"], [[1, 2]],
                          [1, 2**70], np.uint64(2**64 - 1), np.float32(3.0)]
        for bad in bad_inputs:
            yield "tokens", f"input {str(bad)[:30]}", base, dict(base["files"]), ("tokens", bad)


def materialize(case: Path, base, files: dict, special, work: Path, planted: dict) -> Path:
    """Write the case's export directory (and what it plants around it); returns the directory."""
    if special and special[0] == "no_dir":
        return case / "export"
    case.mkdir(parents=True)
    d = case / "export"
    if special and special[0] == "dir_is_file":
        d.write_bytes(base["files"]["model.json"])
        return d
    d.mkdir()
    for f, b in files.items():
        (d / f).write_bytes(b)
    if not special:
        return d
    if special[0] == "plant":
        _, fname, how = special
        lib = planted[base["name"]]
        if how.startswith("symlink"):
            (d / fname).symlink_to(lib)
        else:
            shutil.copy(lib, d / fname)
        if how.endswith("sha256"):
            (d / (fname + ".sha256")).write_text(_sha(lib.read_bytes()))
    elif special[0] == "plant_name":  # a library where lib<NAME>.so would resolve, and its digest
        n = special[1]
        lib = planted[base["name"]]
        for target in (d / f"lib{n}.so", case / "elsewhere" / "libx.so"):
            try:  # (a name with a NUL or a slash cannot be planted inside the directory)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(lib, target)
                target.with_name(target.name + ".sha256").write_text(_sha(lib.read_bytes()))
            except (OSError, ValueError):
                pass
        (d / "lib").mkdir(exist_ok=True)
    elif special[0] == "special":
        _, target, kind = special
        p = d / target
        p.unlink()
        if kind == "symlink_same_bytes":
            (case / target).write_bytes(files[target])
            p.symlink_to(case / target)
        elif kind == "fifo":
            os.mkfifo(p)
        elif kind == "directory":
            p.mkdir()
        elif kind == "dev_zero":
            p.symlink_to("/dev/zero")
    return d


# --- one case, in the child -----------------------------------------------------------------------------
def _token_case(directory: str, bad) -> dict:
    m = ExportedModel(directory)
    try:
        if m.features:
            F = m.features
            seq, vec = {"nan row": (np.full((4, F), np.nan, np.float32), np.full(F, np.nan, np.float32)),
                        "inf row": (np.full((4, F), np.inf), np.full(F, -np.inf, np.float32)),
                        "wrong width": (np.zeros((4, F + 1), np.float32), np.zeros(F + 1, np.float32)),
                        "flat": (np.zeros(2 * F, np.float32), np.zeros(2 * F, np.float32)),
                        "strings": (np.full((4, F), "a"), np.full(F, "a")),
                        "float64 overflow": (np.full((4, F), 1e300), np.full(F, 1e300)),
                        "3-d": (np.zeros((1, 4, F), np.float32), np.zeros((1, F), np.float32))}[bad]
            for call in (lambda: m.run_sequence(seq), lambda: m.run(seq), lambda: m.step(vec, m.new_state())):
                try:
                    call()
                except (TypeError, ValueError, IndexError):
                    continue
                return {"class": "silent_change", "message": f"features {bad!r} accepted"}
            return {"class": "clear_error", "message": "refused"}
        state = m.new_state()
        for call in ((lambda: m.step(bad, state)) if not isinstance(bad, list) else (lambda: m.run_sequence(bad)),
                     lambda: m.run(bad if isinstance(bad, list) else [bad])):
            try:
                call()
            except (TypeError, ValueError, IndexError) as e:
                msg = str(e)
                continue
            return {"class": "silent_change", "message": f"token {bad!r} accepted"}
        if state.any():
            return {"class": "silent_change", "message": "a refused token changed the state"}
        return {"class": "clear_error", "message": msg[:300]}
    except ExportError as e:
        return {"class": "traceback", "message": f"valid export refused: {e}"[:300]}


def load_case(directory: str, x, reference: dict, rehashed: bool) -> dict:
    try:
        got = _outputs(directory, x)
    except ExportError as e:
        return {"class": "clear_error", "message": str(e)[:300]}
    if got == reference:
        return {"class": "ok_identical"}
    return {"class": "rehashed_runs" if rehashed else "silent_change",
            "message": "outputs differ: " + ", ".join(k for k in got if got[k] != reference[k])}


def in_child(fn, *args) -> dict:
    return _in_child(fn, *args, timeout=TIMEOUT_S, mem_limit=MEM_LIMIT)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-field", type=int, default=6, help="hostile values tried per manifest key")
    ap.add_argument("--every", type=int, default=1, help="run every k-th case only (a quick smoke run; not saved)")
    ap.add_argument("--out", type=Path, default=RESULTS / "fuzz_runtime.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="fuzz_runtime_"))
    os.environ["RNNSLIM_CACHE_DIR"] = str(work / "cache")  # a private cache for the campaign
    try:
        bases = make_bases(work / "bases")
        planted = {b["name"]: planted_library(work, b["name"]) for b in bases}
        for b in bases:  # the originals' outputs (and a warm cache), computed in a child too
            ref = in_child(lambda d, x: {"class": "ok", **_outputs(d, x)}, str(b["dir"]), b["input"])
            assert ref.pop("class") == "ok", ref
            ref.pop("seconds", None)
            b["reference"] = ref
        counts, by_family, problems, samples = Counter(), {}, [], {}
        slowest, t0 = 0.0, time.perf_counter()
        for i, (family, desc, base, files, special) in enumerate(variants(bases, rng, args.n_field)):
            if i % args.every:
                continue
            case = work / "cases" / f"c{i}"
            marker = work / "markers" / f"c{i}"
            marker.parent.mkdir(parents=True, exist_ok=True)
            os.environ[MARKER_ENV] = str(marker)
            d = materialize(case, base, files, special, work, planted)
            if special and special[0] == "tokens":
                res = in_child(_token_case, str(d), special[1])
            else:
                res = in_child(load_case, str(d), base["input"], base["reference"], family == "source_rehashed")
            if res["class"] == "clear_error" and "\n" in res.get("message", ""):
                res["class"] = "unclear_error"
            if marker.exists() and family != "source_rehashed":
                res = {**res, "class": "planted_code_ran"}
            elif marker.exists():
                res = {**res, "class": "rehashed_runs", "message": "rewritten source with a constructor: compiled "
                       "and run as the new code it is (digests rewritten too)"}
            cls = res["class"]
            counts[cls] += 1
            by_family.setdefault(family, Counter())[cls] += 1
            slowest = max(slowest, res.get("seconds", 0.0))
            if cls not in ("clear_error", "ok_identical", "rehashed_runs"):
                problems.append({"base": base["kind"], "family": family, "case": desc[:200], **res})
            elif cls in ("clear_error", "rehashed_runs") and len(samples.setdefault(family, [])) < 3:
                samples[family].append(f"{desc[:60]}: {res.get('message', '')[:200]}")
            shutil.rmtree(case, ignore_errors=True)
            marker.unlink(missing_ok=True)
        summary = {
            "cases": sum(counts.values()), "classes": dict(counts), "by_family": {k: dict(v) for k, v in by_family.items()},
            "bases": [b["kind"] for b in bases], "seed": args.seed, "timeout_s": TIMEOUT_S,
            "memory_limit_bytes_over_parent": MEM_LIMIT, "slowest_case_s": round(slowest, 3),
            "wall_s": round(time.perf_counter() - t0, 1), "problems": problems[:50], "sample_messages": samples,
            "goal": "0 traceback, 0 crash, 0 hang, 0 planted_code_ran, 0 silent_change, 0 unclear_error",
            "rehashed_runs_note": "sources and digests both rewritten: compiled and run as new code, by design",
        }
        if args.every == 1:
            update_results(args.out, "fuzz_runtime", summary)
        report(summary, problems)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
