"""Fuzz the model loader with malformed files (issue 10): every variant must end in a clear
ModelFormatError or load the exact original model; no tracebacks, hangs, or silent changes.

Variants of a tiny saved model (native format: dense, and sparse_csr + lzma encoded) and of a
tiny reference-format model (NAME.json + NAME.safetensors, with and without the optional
weights_sha256): JSON field mutations (types, huge / negative / float sizes, missing and extra
keys, paths), truncations, byte flips, safetensors header edits (re-signed so they reach the
structural checks), FIFOs and symlinks. Each load runs in a forked child with a 10 s timeout and
an address-space limit of +2 GiB over the parent. Classes:
    clear_error   ModelFormatError, one line naming the file (else unclear_error)
    traceback     any other exception
    hang          no answer in 10 s         memory     MemoryError / killed at the memory limit
    changed       loaded, state_dict differs from the original
    ok_identical  loaded, state_dict identical

Reference-format data bytes are only fuzzed with a weights_sha256 in the JSON: without it a
flipped weight is a valid, different model (documented: such files are not integrity-checked).

    .venv/bin/python benchmarks/fuzz_models.py [--seed 0] [--n-json 1200]
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import random
import resource
import shutil
import struct
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch  # noqa: E402
from common import RESULTS, update_results  # noqa: E402
from fuzz_child import in_child  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from rnnslim.io.errors import ModelFormatError  # noqa: E402
from rnnslim.io.format import load_model, save_model  # noqa: E402
from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, SequenceModel  # noqa: E402

TIMEOUT_S = 10.0
MEM_LIMIT = 2 << 30
VALUES = [None, True, False, -1, 0, 1, 3, 2**40, 2_000_000, 1e6, 256.7, 4.0, float("nan"), float("inf"), "x", "",
          "../x", "/dev/zero", [], [1, 2], {}, {"a": 1}]


def _tiny(hidden=(4, 3)):
    spec = ModelSpec(cell="lstm", input_kind=InputKind.EMBEDDING, input_size=5, embed_size=4,
                     layers=[LayerShape(hidden_size=h) for h in hidden], output_size=5)
    torch.manual_seed(0)
    m = SequenceModel(spec).eval()
    m.task_meta = {"task": "charlm", "vocab": list("abcde")}
    return m


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


# --- bases ----------------------------------------------------------------------------------------------
class Base:
    """A valid model on disk: json name, weights name, their bytes, and the reference state_dict."""

    def __init__(self, kind, json_name, weights_name, jbytes, wbytes, ref):
        self.kind, self.json_name, self.weights_name = kind, json_name, weights_name
        self.jbytes, self.wbytes, self.ref = jbytes, wbytes, ref

    def manifest(self):
        return json.loads(self.jbytes)


def make_bases(work: Path) -> list[Base]:
    bases = []
    m = _tiny()
    save_model(m, work / "dense")
    s = _tiny()
    s.tensor_encodings = {"rnn.layers.0.weight_hh_l0": {"encoding": "sparse_csr"},
                          "rnn.layers.1.weight_ih_l0": {"encoding": "sparse_bitmap"},
                          "decoder.weight": {"encoding": "lzma", "preset": 1}}
    with torch.no_grad():
        s.rnn.layers[0].weight_hh_l0[::2] = 0
    save_model(s, work / "sparse")
    for name in ("dense", "sparse"):
        d = work / name
        bases.append(Base(f"native_{name}", "model.json", "model.safetensors", (d / "model.json").read_bytes(),
                          (d / "model.safetensors").read_bytes(), load_model(d).state_dict()))
    # reference layout: one hidden size, rnn.weight_ih_l{k}
    r = _tiny(hidden=(4, 4))
    raw = {}
    for k, v in r.state_dict().items():
        if k.startswith("rnn.layers."):
            _, _, layer, base = k.split(".", 3)
            k = f"rnn.{base.removesuffix('_l0')}_l{layer}"
        raw[k] = v.contiguous()
    d = work / "ref"
    d.mkdir()
    save_file(raw, str(d / "r.safetensors"))
    wb = (d / "r.safetensors").read_bytes()
    meta = {"name": "tiny", "cell": "lstm", "hidden_size": 4, "num_layers": 2, "dropout": 0.0, "vocab": list("abcde")}
    (d / "r.json").write_text(json.dumps(meta))
    ref = load_model(d / "r.json").state_dict()
    bases.append(Base("reference", "r.json", "r.safetensors", json.dumps(meta).encode(), wb, ref))
    bases.append(Base("reference_sha", "r.json", "r.safetensors", json.dumps({**meta, "weights_sha256": _sha(wb)}).encode(),
                      wb, ref))
    return bases


# --- variants -------------------------------------------------------------------------------------------
def _paths(obj, prefix=()):
    if prefix:
        yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:3]):
            yield from _paths(v, prefix + (i,))


def _set(obj, path, value, delete=False):
    for k in path[:-1]:
        obj = obj[k]
    if delete:
        del obj[path[-1]]
    else:
        obj[path[-1]] = value


def _resign(base: Base, man: dict, wbytes: bytes) -> dict:
    if base.kind == "reference":
        return man
    return {**man, "weights_sha256": _sha(wbytes)}


def _header_split(wbytes: bytes) -> tuple[dict, bytes]:
    n = struct.unpack("<Q", wbytes[:8])[0]
    return json.loads(wbytes[8:8 + n]), wbytes[8 + n:]


def _header_join(header: dict, data: bytes) -> bytes:
    h = json.dumps(header).encode()
    h += b" " * ((-len(h)) % 8)
    return struct.pack("<Q", len(h)) + h + data


def variants(bases: list[Base], rng: random.Random, n_json: int):
    """Yield (family, description, base, json bytes, weights bytes, special) for each case."""
    for base in bases:
        man = base.manifest()
        paths = list(_paths(man))
        # JSON field mutations
        for _ in range(n_json // len(bases)):
            p = rng.choice(paths)
            m = copy.deepcopy(man)
            if rng.random() < 0.2:
                _set(m, p, None, delete=True)
                desc = f"delete {'.'.join(map(str, p))}"
            else:
                v = rng.choice(VALUES)
                _set(m, p, v)
                desc = f"set {'.'.join(map(str, p))} = {v!r}"
            yield "json_field", desc, base, json.dumps(m).encode(), base.wbytes, None
        # size fields: huge / negative / float
        size_paths = [p for p in paths if p and p[-1] in ("hidden_size", "num_layers", "input_size", "embed_size",
                                                          "output_size", "proj_size")]
        for p in size_paths:
            for v in (-1, 0, 256.7, 2_000_000, 10**12, 1_000_000):
                m = copy.deepcopy(man)
                _set(m, p, v)
                yield "json_size", f"set {'.'.join(map(str, p))} = {v}", base, json.dumps(m).encode(), base.wbytes, None
        if "spec" in man:
            m = copy.deepcopy(man)
            m["spec"]["layers"] = [{"hidden_size": 3}] * 1_000_000
            yield "json_size", "1e6 layers", base, json.dumps(m).encode(), base.wbytes, None
            for name in list(man["tensors"])[:4]:
                for shape in ([1, 600_000_000], [], [-1, 4], [4.5, 4], "x"):
                    m = copy.deepcopy(man)
                    m["tensors"][name]["shape"] = shape
                    yield "json_size", f"tensors.{name}.shape = {shape}", base, json.dumps(m).encode(), base.wbytes, None
        # extra keys
        for where in ([], ["spec"], ["task"]):
            m = copy.deepcopy(man)
            tgt = m
            for k in where:
                tgt = tgt.get(k, {})
            if isinstance(tgt, dict):
                tgt["unexpected_key"] = [1, 2]
                yield "json_extra_key", f"extra key in {where}", base, json.dumps(m).encode(), base.wbytes, None
        # paths
        for v in ("/dev/zero", "/etc/passwd", "../x", "..", ".", "", "sub/model.safetensors", "model.safetensors\0x",
                  "nonexistent.safetensors", 7, None, ["model.safetensors"]):
            m = {**man, "weights_file": v}
            yield "json_path", f"weights_file = {v!r}", base, json.dumps(m).encode(), base.wbytes, None
        # top-level type and syntax
        for raw in (b"[]", b"[1,2]", b"1", b'"x"', b"null", b"{", b"", b"\xff\xfe", b"[" * 100000 + b"]" * 100000,
                    b'{"a": NaN}', json.dumps([man]).encode()):
            yield "json_syntax", f"json = {raw[:20]!r}", base, raw, base.wbytes, None
        # truncations
        for frac in (0.0, 0.1, 0.5, 0.9, 0.99):
            n = int(len(base.jbytes) * frac)
            yield "truncate_json", f"json[:{n}]", base, base.jbytes[:n], base.wbytes, None
        for n in (0, 4, 8, 20, 100, len(base.wbytes) // 2, len(base.wbytes) - 1):
            for resign in (False, True):
                w = base.wbytes[:n]
                j = json.dumps(_resign(base, man, w)).encode() if resign else base.jbytes
                yield "truncate_weights", f"weights[:{n}] resign={resign}", base, j, w, None
        # byte flips (not re-signed: the checksum must catch data flips)
        if base.kind != "reference":
            for _ in range(25):
                i = rng.randrange(len(base.wbytes))
                w = bytearray(base.wbytes)
                w[i] ^= 1 << rng.randrange(8)
                yield "byte_flip", f"flip byte {i}", base, base.jbytes, bytes(w), None
        # header byte flips, re-signed: they must fail the structural checks or change nothing
        hlen = 8 + struct.unpack("<Q", base.wbytes[:8])[0]
        for _ in range(30):
            i = rng.randrange(hlen)
            w = bytearray(base.wbytes)
            w[i] ^= 1 << rng.randrange(8)
            yield "header_flip", f"flip header byte {i} (re-signed)", base, json.dumps(_resign(base, man, bytes(w))).encode(), \
                bytes(w), None
        # structured header edits, re-signed
        header, data = _header_split(base.wbytes)
        names = [k for k in header if k != "__metadata__"]
        for name in names[:6]:
            for field, value in (("dtype", "I32"), ("dtype", "F16"), ("dtype", "U8"), ("dtype", "BOOL"),
                                 ("shape", [10**9]), ("shape", [1, 1]), ("data_offsets", [0, 2**62])):
                h = copy.deepcopy(header)
                h[name][field] = value
                w = _header_join(h, data)
                yield "header_edit", f"{name}.{field} = {value} (re-signed)", base, json.dumps(_resign(base, man, w)).encode(), \
                    w, None
            if base.kind.startswith("native") or base.kind == "reference_sha":
                h = copy.deepcopy(header)
                h.pop(name)
                w = _header_join(h, data)
                yield "header_edit", f"drop {name} (re-signed)", base, json.dumps(_resign(base, man, w)).encode(), w, None
        huge = _header_join(header, data)
        w = struct.pack("<Q", 2**60) + huge[8:]
        yield "header_edit", "header length 2**60", base, json.dumps(_resign(base, man, w)).encode(), w, None
        # NaN / Inf / integer weights, re-signed
        for tensor in names[:3]:
            for bad in (float("nan"), float("inf")):
                from safetensors.torch import load as st_load
                from safetensors.torch import save as st_save

                t = st_load(base.wbytes)
                if t[tensor].dtype.is_floating_point:
                    t[tensor].view(-1)[0] = bad
                    w = st_save(t)
                    yield "nonfinite", f"{tensor}[0] = {bad} (re-signed)", base, json.dumps(_resign(base, man, w)).encode(), \
                        w, None
        # FIFOs, symlinks
        for special in ("weights_fifo", "json_fifo", "weights_symlink_dev_zero", "weights_symlink_passwd",
                        "json_symlink_dev_zero", "weights_dir", "json_dir", "weights_symlink_outside"):
            yield "special_file", special, base, base.jbytes, base.wbytes, special


def materialize(case_dir: Path, base: Base, jbytes: bytes, wbytes: bytes, special) -> Path:
    case_dir.mkdir(parents=True)
    j, w = case_dir / base.json_name, case_dir / base.weights_name
    if special == "json_fifo":
        os.mkfifo(j)
    elif special == "json_symlink_dev_zero":
        os.symlink("/dev/zero", j)
    elif special == "json_dir":
        j.mkdir()
    else:
        j.write_bytes(jbytes)
    if special == "weights_fifo":
        os.mkfifo(w)
    elif special == "weights_symlink_dev_zero":
        os.symlink("/dev/zero", w)
    elif special == "weights_symlink_passwd":
        os.symlink("/etc/passwd", w)
    elif special == "weights_dir":
        w.mkdir()
    elif special == "weights_symlink_outside":
        (case_dir.parent / f"{case_dir.name}.outside").write_bytes(wbytes)
        os.symlink(case_dir.parent / f"{case_dir.name}.outside", w)
    else:
        w.write_bytes(wbytes)
    return case_dir if base.kind.startswith("native") else j


def load_case(target: Path, ref: dict) -> dict:
    """Load `target` (in the forked child); classify."""
    try:
        m = load_model(target)
        sd = m.state_dict()
        same = sd.keys() == ref.keys() and all(sd[k].dtype == ref[k].dtype and torch.equal(sd[k], ref[k]) for k in ref)
        out = {"class": "ok_identical" if same else "changed"}
    except ModelFormatError as e:
        out = {"class": "clear_error", "message": str(e)[:300]}
    except MemoryError as e:
        out = {"class": "memory", "message": f"MemoryError: {e}"[:300]}
    out["peak_rss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return out


def run_case(target: Path, ref: dict) -> dict:
    """Load `target` in a forked child (fuzz_child.in_child: timeout, memory limit); classify."""
    return in_child(load_case, target, ref, timeout=TIMEOUT_S, mem_limit=MEM_LIMIT)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-json", type=int, default=1200, help="random JSON field mutations (split over the bases)")
    ap.add_argument("--out", type=Path, default=RESULTS / "fuzz_models.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="fuzz_models_"))
    try:
        bases = make_bases(work / "bases")
        counts, by_family, problems, samples = Counter(), {}, [], {}
        slowest, peak = 0.0, 0
        t0 = time.perf_counter()
        for i, (family, desc, base, jb, wb, special) in enumerate(variants(bases, rng, args.n_json)):
            target = materialize(work / "cases" / f"c{i}", base, jb, wb, special)
            res = run_case(target, base.ref)
            if res["class"] == "clear_error" and ("\n" in res["message"] or str(work / "cases" / f"c{i}") not in res["message"]):
                res["class"] = "unclear_error"  # a ModelFormatError that is not one line naming the file
            cls = res["class"]
            counts[cls] += 1
            by_family.setdefault(family, Counter())[cls] += 1
            slowest = max(slowest, res.get("seconds", 0.0))
            peak = max(peak, res.get("peak_rss_kb", 0))
            if cls not in ("clear_error", "ok_identical"):
                problems.append({"base": base.kind, "family": family, "case": desc, **res})
            elif cls == "clear_error" and len(samples.setdefault(family, [])) < 3:
                samples[family].append(res["message"])
            shutil.rmtree(work / "cases" / f"c{i}", ignore_errors=True)
        total = sum(counts.values())
        summary = {
            "cases": total, "classes": dict(counts), "by_family": {k: dict(v) for k, v in by_family.items()},
            "bases": [b.kind for b in bases], "seed": args.seed, "timeout_s": TIMEOUT_S,
            "memory_limit_bytes_over_parent": MEM_LIMIT, "slowest_case_s": round(slowest, 3),
            "peak_child_rss_kb": peak, "wall_s": round(time.perf_counter() - t0, 1),
            "problems": problems[:50], "sample_messages": samples,
            "goal": "0 traceback, 0 hang, 0 changed, 0 memory, 0 crash, 0 unclear_error",
        }
        update_results(args.out, "fuzz_models", summary)
        print(json.dumps({k: summary[k] for k in ("cases", "classes", "slowest_case_s", "wall_s")}, indent=1))
        for p in problems[:30]:
            print(p)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
