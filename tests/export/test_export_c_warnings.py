"""Every generated C export builds where firmware is built: -Wall -Wextra -Werror -pedantic
-std=c99 (and the usual embedded extras, -Wconversion included) under gcc, clang and
arm-none-eabi-gcc (issue 19 s5).

A matrix of exports (int8 `--format c`: LSTM / GRU / RNN, token and feature input, tile-sparse,
folded embedding, delta steps, bidirectional, CRNN front ends, hidden sizes below one SIMD vector; `--format
c-fp32`: every cell and input kind) is compiled once per compiler configuration, each SIMD
path of rnnslim_core.h included (portable, AVX2, AVX512-VNNI, NEON: compile only, so any x86
host checks the AVX-512 code). A configuration whose compiler is absent is skipped with the
reason. The tiny models also run under AddressSanitizer: the accesses gcc's dead-code bounds
warnings are about (silenced in rnnslim_core.h) really stay inside the buffers.
"""

from __future__ import annotations

import copy
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from c_warning_configs import CONFIGS, compile_export, skip_reason
from compilers import needs_cc
from int8_models import delta_model as _delta_base
from int8_models import crnn_model, feature_model, integer_model, zero_tiles

from rnnslim.export.c_check import check_on_host, random_streams
from rnnslim.export.c_float import export_c_float
from rnnslim.export.c_source import export_c
from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, SequenceModel
from rnnslim.quantize.int8 import IntegerRunner
from rnnslim.quantize.int8.delta import set_delta_threshold_
from rnnslim.runtime.build import find_compiler

def _with_meta(model, meta: dict):
    model.task_meta = meta
    return model


# a language model's vocabulary adds NAME_vocab.c (escaped strings, the encoder); a feature
# model's recorded scaling adds const arrays to NAME.c
CHARS = ["\n", " ", "a", "?", "\\", '"', "\0", "\u00e9", "\u65e5", "\U0001f642", "\t", "z"]
WORDS = ["<eos>", "<unk>", "??=", 'say"', "caf\u00e9", *(f"w{i}" for i in range(25))]
SCALING = {"mean": [0.5 * i for i in range(13)], "std": [1.0 + i for i in range(13)]}


def _delta(cell: str, kind: str, hidden):
    return set_delta_threshold_(copy.deepcopy(_delta_base(cell, kind, hidden=hidden)), {0: 3, 1: 6})


# every int8 export feature at least once; hidden 8 / 16: below or at one AVX-512 vector
INT8_MODELS = {
    "lstm_sparse": lambda: zero_tiles(integer_model("lstm", hidden=(40, 24))),
    "gru_folded_tiny": lambda: integer_model("gru", hidden=(16, 8), vocab=8, embed=64, out=8),
    "rnn_tiny": lambda: integer_model("rnn_tanh", hidden=(8,), vocab=5, embed=3, out=2),
    "lstm_identity_last": lambda: feature_model("lstm", "identity", readout="last", hidden=(24,)),
    "gru_linear_tiny": lambda: feature_model("gru", "linear", hidden=(8,), F=2, out=1),
    "lstm_delta_tokens": lambda: _delta("lstm", "embedding", (8, 24)),
    "gru_delta_linear": lambda: _delta("gru", "linear", (40, 24)),
    "lstm_bidi_tokens": lambda: integer_model("lstm", hidden=(16, 8), bidirectional=True),
    "gru_bidi_linear_last": lambda: feature_model("gru", "linear", readout="last", hidden=(24,), bidirectional=True),
    "gru_chars_vocab": lambda: _with_meta(integer_model("gru", hidden=(8,), vocab=12, embed=4, out=12),
                                          {"task": "charlm", "vocab": CHARS}),
    "lstm_words_vocab": lambda: _with_meta(integer_model("lstm", hidden=(8,)), {"task": "wordlm", "vocab": WORDS}),
    "gru_crnn_window_relu": lambda: crnn_model("gru", "relu", 5, 2, hidden=(8,)),
    "lstm_crnn_gelu_all": lambda: crnn_model("lstm", "gelu", 3, 0, readout="all", hidden=(16,)),
    "lstm_linear_scaled": lambda: _with_meta(feature_model("lstm", "linear", hidden=(8,)),
                                             {"task": "classify", "scaling": SCALING}),
}


def _float_model(cell: str, kind: str) -> SequenceModel:
    spec = ModelSpec(cell=cell, input_kind=InputKind(kind), input_size=10, embed_size=10 if kind == "identity" else 6,
                     layers=[LayerShape(hidden_size=16), LayerShape(hidden_size=3)], output_size=7)
    return SequenceModel(spec).eval()


FLOAT_MODELS = {f"fp32_{cell}_{kind}": (cell, kind) for cell, kind in
                [("lstm", "embedding"), ("gru", "linear"), ("rnn_tanh", "identity"), ("rnn_relu", "embedding")]}


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """{export name: (directory, is int8)} written once for every configuration"""
    root = tmp_path_factory.mktemp("exports")
    out = {}
    for name, make in INT8_MODELS.items():
        export_c(make(), root / name, name=name)
        out[name] = (root / name, True)
    for name, (cell, kind) in FLOAT_MODELS.items():
        export_c_float(_float_model(cell, kind), root / name, name=name)
        out[name] = (root / name, False)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("config", list(CONFIGS))
def test_every_export_builds_with_werror(exports, config):
    cc, flags, host, with_float = CONFIGS[config]
    reason = skip_reason(cc, flags, host)
    if reason:
        pytest.skip(reason)
    dirs = [d for d, int8 in exports.values() if int8 or with_float]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        problems = [p for p in pool.map(lambda d: compile_export(cc, flags, d), dirs) if p]
    assert not problems, f"{len(problems)} of {len(dirs)} exports do not build cleanly:\n" + "\n".join(problems[:3])


def _sanitizers_work(cc: str, tmp: Path) -> bool:
    src = tmp / "probe.c"
    src.write_text("int main(void) { return 0; }\n")
    proc = subprocess.run([cc, "-fsanitize=address,undefined", str(src), "-o", str(tmp / "probe")],
                          capture_output=True, text=True, timeout=120)
    return proc.returncode == 0 and subprocess.run([str(tmp / "probe")], capture_output=True).returncode == 0


@needs_cc
def test_tiny_exports_stay_in_bounds_under_asan(tmp_path):
    """The loops gcc warns about on small models (AVX2: the vectorized tails of byte loops, AVX-512:
    the 16-lane gate loops) never touch memory outside the buffers: such exports run bit-exact
    under AddressSanitizer + UBSan with the host's SIMD path."""
    cc = find_compiler()
    if not _sanitizers_work(cc, tmp_path):
        pytest.skip(f"{cc} cannot build and run -fsanitize=address,undefined programs here")
    for model in ("rnn_tiny", "gru_linear_tiny", "lstm_delta_tokens"):
        q = INT8_MODELS[model]()
        facts = export_c(q, tmp_path / model, name=model)
        res = check_on_host(IntegerRunner(q, "portable"), tmp_path / model,
                            random_streams(facts.vocab, 6, 10, features=facts.features), cc=cc,
                            flags=("-O3", "-march=native", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"))
        assert res.ok, (model, res.mismatches)
