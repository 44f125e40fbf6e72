"""Fuzz the Keras / ONNX importers (issue 20 part 5) with damaged model files: every case must
end in a clear ValueError (one line) or import a model that passed the importer's own parity
check against ONNX Runtime / Keras; no tracebacks, hangs or crashes.

Seeds: small torch models exported with torch.onnx.export (TorchScript exporter): a 2-layer
LSTM word LM, a batch-first GRU classifier (last step), a time-major bidirectional LSTM tagger,
an h_n[-1] classifier with an input Linear and log_softmax, the PyTorch examples LM shape
(view(-1, V)), a mean-readout ReLU RNN; and (when keras is installed) Keras 3 models saved as
.keras and .h5 (LSTM LM, GRU classifier, bidirectional tagger, Normalization + stacked LSTMs).
ONNX mutations: a node dropped, an attribute changed, an input rewired, an initializer resized
or filled with NaN / huge values, the output renamed, the opset changed, bytes truncated or
flipped. Keras mutations: config.json edits inside the .keras zip (class names, units,
activations, flags), truncations and byte flips of .keras / .h5. Each case runs in a forked
child (fuzz_child.in_child: 20 s timeout, +2 GiB address space). Classes:
    clear_error    ValueError with a one-line message (ImportError too: a missing extra)
    imported       imported, and the importer's parity check passed (<= 1e-5)
    unclear_error  a ValueError of several lines
    traceback / hang / memory / crash

    .venv/bin/python benchmarks/fuzz_import.py [--seed 0] [--onnx 400] [--keras 150]
Writes benchmarks/results/fuzz_import.json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import sys
import tempfile
import time
import warnings
import zipfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402
import torch  # noqa: E402
from common import RESULTS, update_results  # noqa: E402
from fuzz_child import in_child, report  # noqa: E402
from torch import nn  # noqa: E402

from rnnslim.interop.save import import_file  # noqa: E402

TIMEOUT_S = 20.0
KEEP = Path(os.environ["FUZZ_IMPORT_KEEP"]) if os.environ.get("FUZZ_IMPORT_KEEP") else None  # problem files kept


class _LM(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb, self.rnn, self.fc = nn.Embedding(13, 6), nn.LSTM(6, 5, num_layers=2, batch_first=True), nn.Linear(5, 13)

    def forward(self, x):
        return self.fc(self.rnn(self.emb(x))[0])


class _GRU(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn, self.fc = nn.GRU(4, 5, batch_first=True), nn.Linear(5, 3)

    def forward(self, x):
        return self.fc(self.rnn(x)[0][:, -1])


class _Bi(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn, self.fc = nn.LSTM(4, 5, bidirectional=True), nn.Linear(10, 3)

    def forward(self, x):
        return self.fc(self.rnn(x)[0])


class _HN(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj, self.rnn, self.fc = nn.Linear(4, 6), nn.LSTM(6, 5, num_layers=2, batch_first=True), nn.Linear(5, 3)

    def forward(self, x):
        return torch.log_softmax(self.fc(self.rnn(self.proj(x))[1][0][-1]), -1)


class _Examples(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder, self.rnn, self.decoder = nn.Embedding(20, 8), nn.LSTM(8, 8, 2), nn.Linear(8, 20)

    def forward(self, x):
        return torch.log_softmax(self.decoder(self.rnn(self.encoder(x))[0]).view(-1, 20), dim=1)


class _Mean(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn, self.fc = nn.RNN(4, 5, nonlinearity="relu", batch_first=True), nn.Linear(5, 2)

    def forward(self, x):
        return self.fc(self.rnn(x)[0].mean(1))


def onnx_seeds(folder: Path) -> list[Path]:
    seeds = [(_LM, torch.randint(0, 13, (2, 6))), (_GRU, torch.randn(2, 6, 4)), (_Bi, torch.randn(6, 2, 4)),
             (_HN, torch.randn(2, 6, 4)), (_Examples, torch.randint(0, 20, (6, 2))), (_Mean, torch.randn(2, 6, 4))]
    out = []
    for cls, x in seeds:
        path = folder / f"{cls.__name__.strip('_').lower()}.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(cls().eval(), (x,), str(path), dynamo=False, input_names=["x"], output_names=["y"],
                              dynamic_axes={"x": {0: "a", 1: "b"}})
        out.append(path)
    return out


def keras_seeds(folder: Path) -> list[Path]:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras
    except ImportError:
        return []
    L, rng = keras.layers, np.random.default_rng(0)
    norm = L.Normalization()
    norm.adapt(rng.standard_normal((10, 6, 4)).astype("float32") * 3 + 1)
    models = {
        "k_lm": [keras.Input((None,), dtype="int32"), L.Embedding(13, 6), L.LSTM(5, return_sequences=True), L.Dense(13)],
        "k_gru": [keras.Input((9, 4)), L.GRU(5), L.Dense(3, activation="softmax")],
        "k_bi": [keras.Input((None, 4)), L.Bidirectional(L.LSTM(5, return_sequences=True)), L.Dense(3)],
        "k_norm": [keras.Input((None, 4)), norm, L.LSTM(6, return_sequences=True), L.LSTM(4), L.Dense(2)],
    }
    out = []
    for name, layers in models.items():
        m = keras.Sequential(layers)
        for suffix in (".keras", ".h5"):
            path = folder / f"{name}{suffix}"
            m.save(path)
            out.append(path)
    return out


# --- mutations -----------------------------------------------------------------------------
def mutate_onnx(src: Path, dst: Path, rng: random.Random) -> str:
    import onnx
    from onnx import helper, numpy_helper

    kind = rng.choice(["drop", "attr", "input", "init", "output", "opset", "truncate", "flip"])
    if kind in ("truncate", "flip"):
        return _mutate_bytes(src, dst, rng, kind)
    m = onnx.load(str(src))
    g = m.graph
    if kind == "drop":
        del g.node[rng.randrange(len(g.node))]
    elif kind == "attr":
        nodes = [n for n in g.node if n.attribute]
        a = rng.choice(rng.choice(nodes).attribute)
        if a.type == helper.AttributeProto.INT:
            a.i = rng.choice([-1, 0, 1, 2, 3, 99, 2 ** 40])
        elif a.type == helper.AttributeProto.INTS:
            a.ints[:] = [rng.choice([-1, 0, 1, 2, 3]) for _ in a.ints]
        elif a.type == helper.AttributeProto.STRING:
            a.s = rng.choice([b"reverse", b"bidirectional", b"forward", b"x"])
        elif a.type == helper.AttributeProto.FLOAT:
            a.f = rng.choice([0.0, 2.0, -1.0, float("nan")])
        elif a.type == helper.AttributeProto.STRINGS:
            a.strings[:] = [rng.choice([b"Relu", b"Sigmoid", b"Tanh", b"HardSigmoid"]) for _ in a.strings]
    elif kind == "input":
        node = rng.choice([n for n in g.node if n.input])
        names = [o for n in g.node for o in n.output] + [i.name for i in g.initializer] + [""]
        node.input[rng.randrange(len(node.input))] = rng.choice(names)
    elif kind == "init":
        t = rng.choice(list(g.initializer))
        a = numpy_helper.to_array(t)
        if a.dtype.kind == "f":
            how = rng.choice(["shape", "nan", "huge"])
            if how == "shape":
                shape = tuple(max(1, d + rng.choice([-1, 0, 1])) for d in a.shape)
                a = np.random.default_rng(rng.randrange(1 << 30)).standard_normal(shape).astype(a.dtype)
            else:
                a = a.copy()
                a.reshape(-1)[rng.randrange(a.size)] = np.nan if how == "nan" else 3e38
        else:
            a = a * 0 + rng.choice([-1, 0, 1, 5, 2 ** 40])
        t.CopyFrom(numpy_helper.from_array(a, t.name))
    elif kind == "output":
        g.output[0].name = rng.choice([o for n in g.node for o in n.output])
    else:
        m.opset_import[0].version = rng.choice([1, 7, 9, 11, 13, 30])
    dst.write_bytes(m.SerializeToString())
    return kind


def _mutate_bytes(src: Path, dst: Path, rng: random.Random, kind: str) -> str:
    data = bytearray(src.read_bytes())
    if kind == "truncate":
        data = data[:rng.randrange(len(data))]
    else:
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
    dst.write_bytes(bytes(data))
    return kind


_CONFIG_EDITS = [
    ("class_name", ["Conv1D", "LSTM", "GRU", "SimpleRNN", "Dense", "Masking", "NoSuchLayer"]),
    ("units", [0, 1, 7, -3, "five"]),
    ("activation", ["relu", "sigmoid", "softmax", "linear", "gelu"]),
    ("recurrent_activation", ["hard_sigmoid", "tanh"]),
    ("reset_after", [False]),
    ("return_sequences", [True, False]),
    ("go_backwards", [True]),
    ("stateful", [True]),
    ("merge_mode", ["sum", "ave", None]),
    ("mask_zero", [True]),
    ("input_dim", [1, 3, 1000]),
    ("output_dim", [1, 9]),
]


def _edit_config(obj, rng: random.Random, edits: list) -> None:
    """Change one (key, value) somewhere in a Keras config tree."""
    spots = []

    def walk(o):
        if isinstance(o, dict):
            for k, v in o.items():
                if any(k == key for key, _ in _CONFIG_EDITS):
                    spots.append(o)
                walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)

    walk(obj)
    if not spots:
        return
    spot = rng.choice(spots)
    key = rng.choice([k for k, _ in _CONFIG_EDITS if k in spot])
    spot[key] = rng.choice(dict(_CONFIG_EDITS)[key])
    edits.append(key)


def mutate_keras(src: Path, dst: Path, rng: random.Random) -> str:
    if src.suffix == ".keras" and rng.random() < 0.6:
        with zipfile.ZipFile(src) as z:
            files = {n: z.read(n) for n in z.namelist()}
        config = json.loads(files["config.json"])
        edits: list = []
        for _ in range(rng.randint(1, 2)):
            _edit_config(config, rng, edits)
        files["config.json"] = json.dumps(config).encode()
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            for n, b in files.items():
                z.writestr(n, b)
        dst.write_bytes(buf.getvalue())
        return "config:" + ",".join(edits)
    return _mutate_bytes(src, dst, rng, rng.choice(["truncate", "flip"]))


def run_case(path: str) -> dict:
    warnings.simplefilter("ignore")
    try:
        model = import_file(path)
    except (ValueError, ImportError) as e:
        msg = str(e)
        return {"class": "clear_error" if msg and "\n" not in msg else "unclear_error", "message": msg[:300]}
    return {"class": "imported", "parity": getattr(model, "import_parity", None)}


def campaign(seeds: list[Path], mutate, n: int, rng: random.Random, folder: Path) -> tuple[dict, list]:
    classes, kinds, problems, slowest = Counter(), Counter(), [], 0.0
    for i in range(n):
        src = rng.choice(seeds)
        dst = folder / f"case{i}{src.suffix}"
        kind = mutate(src, dst, rng)
        out = in_child(run_case, str(dst), timeout=TIMEOUT_S)
        classes[out["class"]] += 1
        kinds[kind.split(":")[0]] += 1
        slowest = max(slowest, out.get("seconds", 0.0))
        if out["class"] not in ("clear_error", "imported"):
            problems.append({"case": i, "seed": src.name, "mutation": kind, **out})
            if KEEP:
                dst.replace(KEEP / dst.name)
        dst.unlink(missing_ok=True)
    return {"cases": n, "classes": dict(classes), "mutations": dict(kinds), "slowest_case_s": round(slowest, 2),
            "seeds": [s.name for s in seeds]}, problems


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--onnx", type=int, default=400)
    ap.add_argument("--keras", type=int, default=150)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)  # no OpenMP pool in the parent: a forked child would wait on its threads forever
    t0 = time.perf_counter()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        onnx_summary, onnx_problems = campaign(onnx_seeds(folder), mutate_onnx, args.onnx, rng, folder)
        results["onnx"] = {**onnx_summary, "problems": onnx_problems[:50]}
        keras = keras_seeds(folder)
        if keras:
            keras_summary, keras_problems = campaign(keras, mutate_keras, args.keras, rng, folder)
            results["keras"] = {**keras_summary, "problems": keras_problems[:50]}
        else:
            results["keras"] = {"skipped": "keras is not installed (pip install 'rnnslim[keras]')"}
    wall = round(time.perf_counter() - t0, 1)
    for name in ("onnx", "keras"):
        if "cases" in results[name]:
            print(name)
            report({**results[name], "wall_s": wall}, results[name]["problems"])
    update_results(RESULTS / "fuzz_import.json", "result", {**results, "seed": args.seed, "wall_s": wall})


if __name__ == "__main__":
    main()
