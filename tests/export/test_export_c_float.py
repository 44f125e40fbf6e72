"""The fp32 C export (export_c_float) equals SequenceModel.forward on the host.

A generated harness runs >= 100 random streams from a reset state through NAME_step /
NAME_step_features and writes every step's logits and each stream's final state (raw
float32) to stdout; the same streams go through the model in eval mode, one time step per
call with the state carried, as a batch.

Tolerance: max |C - torch| <= 1e-4 on logits and states (built with -O2 -ffp-contract=off).
Not bit-exact because torch sums its matrix products in another order (blocked BLAS /
oneDNN kernels) and uses its own vectorized exp / tanh, while the C step sums each row in
column order and calls libm expf / tanhf: a few float32 ulp per step, which stay small
because the recurrences contract (measured: ~1e-6 on the small models here, ~2e-6 on
charlstm-256x2 over 20 steps).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnslim.export.c_float import FORMAT_FP32, export_c_float
from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, Readout, SequenceModel
from rnnslim.prune.masks import apply_masks_

from rnnslim.runtime.build import CompilerUnavailable, find_compiler

try:
    CC = find_compiler()
except CompilerUnavailable:
    CC = None
needs_cc = pytest.mark.skipif(CC is None, reason="no C compiler here (set CC or install gcc / clang)")
TOL = 1e-4
FLAGS = ("-O2", "-ffp-contract=off")
REFERENCE = Path("/work/shared/models/charlstm-256x2.json")


def _model(cell="lstm", kind=InputKind.EMBEDDING, hidden=(24, 17), inputs=30, embed=12, out=11,
           readout=Readout.ALL, seed=0, **layer) -> SequenceModel:
    if kind is InputKind.IDENTITY:
        embed = inputs
    spec = ModelSpec(cell=cell, input_kind=kind, input_size=inputs, embed_size=embed,
                     layers=[LayerShape(hidden_size=h, **layer) for h in hidden], output_size=out, readout=readout)
    torch.manual_seed(seed)
    model = SequenceModel(spec)
    with torch.no_grad():  # larger than the default init, so the gates leave their linear range
        for p in model.parameters():
            p.mul_(2.0)
    return model.eval()


def _streams(model, n=100, steps=24, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if model.spec.input_kind is InputKind.EMBEDDING:
        return rng.integers(0, model.spec.input_size, (n, steps), dtype=np.int64)
    return rng.standard_normal((n, steps, model.spec.input_size)).astype(np.float32)


def _harness(name: str, streams: np.ndarray, feature: bool) -> str:
    if feature:
        n, t, f = streams.shape
        rows = ",\n".join("{" + ",".join("{" + ",".join(float(v).hex() + "f" for v in x) + "}" for x in s) + "}"
                          for s in streams)
        decl, call = f"static const float streams[{n}][{t}][{f}]", f"{name}_step_features(&s, streams[i][j], logits)"
    else:
        n, t = streams.shape
        rows = ",\n".join("{" + ",".join(str(int(v)) for v in s) + "}" for s in streams)
        decl, call = f"static const int32_t streams[{n}][{t}]", f"{name}_step(&s, streams[i][j], logits)"
    return f"""#include <stdio.h>
#include <stdint.h>
#include "{name}.h"

{decl} = {{
{rows}
}};

int main(void) {{
    static {name}_state s;
    static float logits[{name.upper()}_OUTPUTS];
    int i, j;
    if ({name}_init()) return 2;
    for (i = 0; i < {n}; i++) {{
        {name}_reset(&s);
        for (j = 0; j < {t}; j++) {{
            if ({call}) return 3;
            fwrite(logits, sizeof logits, 1, stdout);
        }}
        fwrite(s.v, sizeof s.v, 1, stdout);
    }}
    return 0;
}}
"""


def run_c(out: Path, facts, streams: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(logits (N, T, O), final states (N, state_len)) from the compiled export + harness."""
    feature = streams.ndim == 3
    main = out / "harness_main.c"
    main.write_text(_harness(facts.name, streams, feature))
    exe = out / "harness.exe"
    cmd = [CC, "-std=c99", *FLAGS, "-Wall", "-Werror", "-I", str(out), "-o", str(exe), str(main),
           str(out / f"{facts.name}.c"), "-lm"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = subprocess.run([str(exe)], capture_output=True, timeout=300)
    assert run.returncode == 0, run.returncode
    n, t, o, s = streams.shape[0], streams.shape[1], facts.outputs, facts.state_len
    raw = np.frombuffer(run.stdout, dtype="<f4")
    assert raw.size == n * (t * o + s), (raw.size, n * (t * o + s))
    raw = raw.reshape(n, t * o + s)
    return raw[:, : t * o].reshape(n, t, o), raw[:, t * o:]


@torch.no_grad()
def run_torch(model, streams: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same streams through SequenceModel.forward, one step per call, state carried."""
    x = torch.from_numpy(streams).transpose(0, 1)  # time-major: (T, N) or (T, N, F)
    state, outs = None, []
    for t in range(x.shape[0]):
        y, state = model(x[t: t + 1], state)
        outs.append(y.reshape(x.shape[1], -1))
    parts = []
    for st in state:  # per layer: LSTM (h, c), GRU / RNN h; each (1, N, H)
        parts.extend(st if isinstance(st, tuple) else (st,))
    return torch.stack(outs, 1).numpy(), torch.cat([p[0] for p in parts], 1).numpy()


def _check(model, tmp_path, streams=None, name="tiny") -> float:
    streams = _streams(model) if streams is None else streams
    facts = export_c_float(model, tmp_path / "c", name=name)
    c_logits, c_state = run_c(tmp_path / "c", facts, streams)
    t_logits, t_state = run_torch(model, streams)
    diff = max(float(np.abs(c_logits - t_logits).max()), float(np.abs(c_state - t_state).max()))
    assert diff <= TOL, f"max |C - torch| = {diff:.3g} > {TOL}"
    assert np.isfinite(c_logits).all() and float(t_logits.std()) > 0.05  # not a vacuous comparison
    print(f"{name}: max |C - torch| = {diff:.3g}")
    return diff


@needs_cc
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
def test_embedding_models_match_forward_on_100_streams(tmp_path, cell):
    _check(_model(cell), tmp_path)


@needs_cc
@pytest.mark.parametrize("cell,kind,readout", [
    ("lstm", InputKind.LINEAR, Readout.LAST),
    ("gru", InputKind.LINEAR, Readout.ALL),
    ("rnn_tanh", InputKind.IDENTITY, Readout.ALL),
    ("rnn_relu", InputKind.IDENTITY, Readout.LAST),
])
def test_feature_models_match_forward_on_100_streams(tmp_path, cell, kind, readout):
    model = _model(cell, kind, hidden=(20, 13), inputs=6, readout=readout)
    _check(model, tmp_path)
    header = (tmp_path / "c" / "tiny.h").read_text()
    assert "tiny_step_features(tiny_state *s, const float *x, float *logits)" in header
    assert "#define TINY_FEATURES 6" in header and "int tiny_step(" not in header


@needs_cc
def test_pruned_model_exports_its_effective_weights(tmp_path):
    from torch.nn.utils import prune

    model = _model("lstm", hidden=(24, 17))
    dense = run_torch(model, _streams(model, 4, 6))[0]
    # rnnslim's masks: applied in place (prune/masks.py), the parameters hold the zeros
    gen = torch.Generator().manual_seed(1)
    names = ["rnn.layers.0.weight_hh_l0", "rnn.layers.1.weight_ih_l0", "decoder.weight"]
    params = dict(model.named_parameters())
    apply_masks_(model, {n: torch.rand(params[n].shape, generator=gen) > 0.7 for n in names})
    # torch.nn.utils.prune: W_orig keeps its values, W = W_orig * W_mask is what runs
    prune.random_unstructured(model.rnn.layers[1], "weight_hh_l0", amount=0.6)
    layer = model.rnn.layers[1]
    assert (layer.weight_hh_l0_orig != 0).all() and (layer.weight_hh_l0 == 0).float().mean() > 0.5
    assert np.abs(run_torch(model, _streams(model, 4, 6))[0] - dense).max() > 0.1  # the masks matter
    _check(model, tmp_path)
    text = (tmp_path / "c" / "tiny.c").read_text()
    l1_hh = text[text.index("l1_hh_wt["):].split("};")[0]
    assert l1_hh.count("0x0.0p+0f") >= 0.5 * 4 * 17 * 17  # the masked entries are exported as zeros


def test_refused_models_write_nothing(tmp_path):
    out = tmp_path / "c"
    with pytest.raises(ValueError, match="bidirectional.*supports.*unidirectional"):
        export_c_float(_model("gru", hidden=(16,), bidirectional=True), out)
    with pytest.raises(ValueError, match="proj_size=4, not supported"):
        export_c_float(_model("lstm", hidden=(16,), proj_size=4), out)
    with pytest.raises(ValueError, match="readout 'mean'"):
        export_c_float(_model("lstm", hidden=(16,), readout=Readout.MEAN), out)
    model = _model("lstm", hidden=(16,))
    with torch.no_grad():
        model.decoder.bias[0] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        export_c_float(model, out)
    assert not out.exists()


def test_manifest_and_files(tmp_path):
    model = _model("lstm", hidden=(24, 17), inputs=30, embed=12, out=11)
    out = tmp_path / "c"
    facts = export_c_float(model, out, name="My Float-1")
    m = json.loads((out / "model.json").read_text())
    assert m == facts.to_dict() and m["format"] == FORMAT_FP32 == "rnnslim-c-fp32"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["my_float_1.c", "my_float_1.h", "rnnslim_float_core.h", "model.json", "rnnslim-export.json"])
    for f, digest in m["files"].items():
        assert hashlib.sha256((out / f).read_bytes()).hexdigest() == digest
    assert (m["vocab"], m["inputs"], m["embed"], m["outputs"], m["input_kind"]) == (30, 30, 12, 11, "embedding")
    assert m["state_len"] == 2 * (24 + 17) and m["state_bytes"] == 4 * m["state_len"]
    n_params = sum(p.numel() for p in model.parameters())
    assert m["const_bytes"] == 4 * n_params  # every float once (no tables, no padding)
    assert m["scratch_bytes"] == 4 * 2 * 4 * 24 and m["ram_bytes"] == m["scratch_bytes"] + m["state_bytes"]
    text = (out / "my_float_1.c").read_text()
    assert "malloc" not in text and "0x" in text and "e-" not in text  # exact hex literals only
    core = (out / "rnnslim_float_core.h").read_text()
    assert "malloc" not in core and "expf" in core and "tanhf" in core
    other = tmp_path / "mine"  # a folder that is not an export is never overwritten
    other.mkdir()
    (other / "notes.txt").write_text("keep")
    with pytest.raises(FileExistsError, match="refusing"):
        export_c_float(model, other)
    assert (other / "notes.txt").read_text() == "keep"
    export_c_float(model, out, name="again")  # an earlier export is replaced whole
    assert json.loads((out / "model.json").read_text())["name"] == "again" and not (out / "my_float_1.c").exists()


@needs_cc
@pytest.mark.skipif(not REFERENCE.is_file(), reason=f"{REFERENCE} is not here")
def test_reference_charlstm_256x2(tmp_path):
    from rnnslim.io.format import load_model

    model = load_model(REFERENCE).eval()
    streams = _streams(model, n=100, steps=20, seed=3)
    _check(model, tmp_path, streams, name="charlstm")
