"""torch.export `.pt2` step programs (rnnslim.export.torch_export).

Tolerance: the program runs the same kernels on the same (dequantized) weights as the model, so
max |program - model| over 100 random streaming steps (random tokens/features, state carried from
a random state) plus a batch-3 call must be <= 1e-5 (measured: 0); a model with one weight
changed by 1e-3 exceeds it.
"""

import copy
import json
import zipfile

import pytest
import torch

from rnnslim.export.torch_export import (
    TorchExportError,
    UnsafeArchiveError,
    export_torch_program,
    float_weights_copy,
    inspect_pt2,
    load_torch_program,
    torch_program_parity,
)
from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, SequenceModel
from rnnslim.quantize.api import HalfPrecision, KMeans, WeightOnly, quantize_
from rnnslim.utils.threads import torch_threads

TOL = 1e-5
STEPS = 100


@pytest.fixture(autouse=True)
def _one_thread():
    with torch_threads(1):  # batch-1 steps on two shared cores
        yield


def _model(cell="gru", layers=None, kind=InputKind.EMBEDDING, readout="all") -> SequenceModel:
    torch.manual_seed(3)
    spec = ModelSpec(cell=cell, input_kind=kind, input_size=16, embed_size=16, output_size=11, readout=readout,
                     layers=layers or [LayerShape(hidden_size=32)] * 2)
    return SequenceModel(spec).eval()


def _streamed(model, x):
    """The model one step at a time from a zero state, combined like its readout."""
    state, ys = None, []
    with torch.no_grad():
        for t in range(x.shape[0]):
            y, state = model(x[t : t + 1], state)
            ys.append(y)
    if model.spec.readout.value == "all":
        return torch.cat(ys)
    return ys[-1] if model.spec.readout.value == "last" else torch.stack(ys).mean(0)


@pytest.mark.parametrize("cell,layers,kind,readout", [
    ("gru", None, InputKind.EMBEDDING, "all"),
    ("lstm", [LayerShape(hidden_size=24, proj_size=8, bidirectional=True), LayerShape(hidden_size=16)],
     InputKind.LINEAR, "last"),
    ("rnn_tanh", [LayerShape(hidden_size=24)], InputKind.IDENTITY, "mean"),
])
def test_float_program_parity_and_runner(tmp_path, cell, layers, kind, readout):
    m = _model(cell, layers, kind, readout)
    facts = export_torch_program(m, tmp_path / "step.pt2", check_steps=STEPS)
    assert facts["format"] == "torch-pt2" and facts["bytes"] == (tmp_path / "step.pt2").stat().st_size
    assert facts["parity"]["steps"] == STEPS and facts["parity_max_abs_diff"] <= TOL
    assert facts["dequantized_layers"] == [] and facts["pickled_entries"] == 0
    assert list(tmp_path.iterdir()) == [tmp_path / "step.pt2"]  # no temporary left behind
    prog = load_torch_program(facts["path"])
    assert prog.layout.static_time and prog.layout.cell == cell
    # dynamic batch: a sequence at batch 5 through the step loop
    x = torch.randint(0, 16, (6, 5)) if kind is InputKind.EMBEDDING else torch.randn(6, 5, 16)
    assert (prog.sequence(x) - _streamed(m, x)).abs().max() <= TOL
    # an independent check of the same bound (other seed), and one that must fail
    assert torch_program_parity(m, prog, steps=STEPS, seed=7)["max_abs_diff"] <= TOL
    wrong = copy.deepcopy(m)
    with torch.no_grad():
        wrong.decoder.weight[0, 0] += 1e-3
    assert torch_program_parity(wrong, prog, steps=STEPS)["max_abs_diff"] > TOL


@pytest.mark.parametrize("cfg", [WeightOnly(bits=4, group_size=16), WeightOnly(bits=8, group_size=None),
                                 KMeans(clusters=8), HalfPrecision(dtype="bf16")])
@pytest.mark.parametrize("weights", ["float", "stored"])
def test_weight_only_programs(tmp_path, cfg, weights):
    m = _model()
    quantize_(m, cfg)
    facts = export_torch_program(m, tmp_path / "q.pt2", weights=weights, check_steps=STEPS)
    assert facts["parity_max_abs_diff"] <= TOL  # equal to the quantized model (its dequantized weights)
    prog = load_torch_program(facts["path"])
    dtypes = {str(t.dtype) for t in prog.program.state_dict.values()}
    if weights == "float":
        assert set(facts["dequantized_layers"]) == {"embedding", "rnn.layers.0", "rnn.layers.1", "decoder"}
        assert dtypes == {"torch.float32"}
    else:
        assert facts["in_graph_decoded"] and facts["dequantized_layers"] == []
        stored = "torch.bfloat16" if isinstance(cfg, HalfPrecision) else "torch.uint8"
        assert stored in dtypes  # the quantized buffers themselves are in the program
    x = torch.randint(0, 16, (5, 2))
    assert (prog.sequence(x) - _streamed(m, x)).abs().max() <= TOL


def test_float_weights_copy_equals_quantized_model():
    m = _model("lstm", [LayerShape(hidden_size=32, proj_size=16)])
    quantize_(m, WeightOnly(bits=4, group_size=16))
    f, paths = float_weights_copy(m)
    assert paths == ["embedding", "rnn.layers.0", "decoder"]
    assert isinstance(f.rnn.layers[0], torch.nn.LSTM) and f.rnn.layers[0].proj_size == 16
    x = torch.randint(0, 16, (7, 3))
    with torch.no_grad():
        assert (f(x)[0] - m(x)[0]).abs().max() <= TOL


def _rewrite(src, dst, edit):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for item in zin.infolist():
            zout.writestr(item, edit(item.filename, zin.read(item.filename)))


def test_archive_check_refuses_pickled_entries(tmp_path):
    facts = export_torch_program(_model(), tmp_path / "ok.pt2", check_steps=10)
    report = inspect_pt2(facts["path"])
    assert report["safe"] and report["unsafe"] == []

    def mark_pickled(name, data):
        if name.endswith("_weights_config.json"):
            cfg = json.loads(data)
            first = next(iter(cfg["config"]))
            cfg["config"][first]["use_pickle"] = True
            return json.dumps(cfg).encode()
        return data

    bad = tmp_path / "bad.pt2"
    _rewrite(facts["path"], bad, mark_pickled)
    assert not inspect_pt2(bad)["safe"]
    with pytest.raises(UnsafeArchiveError, match="pickled"):
        load_torch_program(bad)

    def evil_inputs(name, data):  # sample inputs only an unrestricted unpickler would load
        if "sample_inputs" in name:
            import io

            buf = io.BytesIO()
            torch.save({"x": zipfile.ZipInfo("not-a-tensor")}, buf, pickle_protocol=2)
            return buf.getvalue()
        return data

    bad2 = tmp_path / "bad2.pt2"
    _rewrite(facts["path"], bad2, evil_inputs)
    with pytest.raises(UnsafeArchiveError, match="sample inputs"):
        load_torch_program(bad2)


def test_parity_failure_raises_and_leaves_no_file(tmp_path, monkeypatch):
    from rnnslim.export import torch_export

    monkeypatch.setattr(torch_export, "torch_program_parity", lambda *a, **k: {"max_abs_diff": 1.0})
    with pytest.raises(TorchExportError):
        export_torch_program(_model(), tmp_path / "x.pt2", check_steps=5)
    assert list(tmp_path.iterdir()) == []
