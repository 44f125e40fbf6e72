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
import platform
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
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

# -Werror on everything -Wall / -Wextra / -pedantic enable, plus what embedded builds commonly add
WARNINGS = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-Wconversion", "-Wshadow", "-Wundef",
            "-Wdouble-promotion", "-Wstrict-prototypes", "-Wmissing-prototypes", "-Wcast-qual", "-Wvla")
X86 = platform.machine().lower() in ("x86_64", "amd64", "i686")
AVX512 = ("-mavx512f", "-mavx512bw", "-mavx512vnni")
M4 = ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16")
A9_NEON = ("-mcpu=cortex-a9", "-marm", "-mfpu=neon", "-mfloat-abi=hard")

# name -> (compiler, flags, host: "x86" / "not x86" / None, float exports too); the int8 core picks
# its SIMD path from the flags. "native" runs where it is not x86 (aarch64: NEON); on x86 it would
# repeat one of the explicit AVX2 / AVX-512 configurations.
CONFIGS = {
    "gcc-portable-O2": ("gcc", ("-O2", "-DRS_PORTABLE"), None, True),
    "gcc-native-O3": ("gcc", ("-O3", "-march=native"), "not x86", False),
    "gcc-avx2-O3": ("gcc", ("-O3", "-mavx2"), "x86", False),
    "gcc-avx512vnni-O3": ("gcc", ("-O3", *AVX512), "x86", False),
    "clang-portable-O2": ("clang", ("-O2", "-DRS_PORTABLE"), None, True),
    "clang-avx512vnni-O3": ("clang", ("-O3", *AVX512), "x86", False),
    "arm-none-eabi-cortex-m4-O2": ("arm-none-eabi-gcc", ("-O2", *M4), None, True),
    "arm-none-eabi-cortex-a9-neon-O3": ("arm-none-eabi-gcc", ("-O3", *A9_NEON), None, False),
    "aarch64-neon-O3": ("aarch64-linux-gnu-gcc", ("-O3",), None, False),
}


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


def _skip_reason(cc: str, flags: tuple[str, ...], host: str | None) -> str | None:
    if shutil.which(cc) is None:
        return f"{cc} is not installed"
    if host == "x86" and not X86:
        return f"{' '.join(flags)} are x86 flags; this host is {platform.machine()}"
    if host == "not x86" and X86:
        return "on x86, -march=native is one of the explicit AVX2 / AVX-512 configurations"
    return None


def _compile(cc: str, flags: tuple[str, ...], directory: Path) -> str | None:
    """None when NAME.c (and NAME_vocab.c, where there is one) compiles cleanly, else the compiler's complaint"""
    for source in (directory / f"{directory.name}.c", directory / f"{directory.name}_vocab.c"):
        if not source.exists():
            continue
        cmd = [cc, *WARNINGS, *flags, "-c", str(source), "-o", str(directory / f"{source.stem}.{os.getpid()}.o")]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if proc.returncode != 0 or proc.stderr.strip():
            return f"{' '.join(cmd)}\n{proc.stderr[-2000:]}"
    return None


@pytest.mark.slow
@pytest.mark.parametrize("config", list(CONFIGS))
def test_every_export_builds_with_werror(exports, config):
    cc, flags, host, with_float = CONFIGS[config]
    reason = _skip_reason(cc, flags, host)
    if reason:
        pytest.skip(reason)
    dirs = [d for d, int8 in exports.values() if int8 or with_float]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        problems = [p for p in pool.map(lambda d: _compile(cc, flags, d), dirs) if p]
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
