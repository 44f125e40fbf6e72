"""quantize_: dispatch by config type, targets and filters, composition with pruning, errors."""

import pytest
import torch
from torch import nn

from rnnslim.io.format import artifact_bytes, load_model, save_model
from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, SequenceModel
from rnnslim.quantize.api import (
    QAT,
    HalfPrecision,
    KMeans,
    Ternary,
    WeightOnly,
    quantize_,
)
from rnnslim.quantize.lowbit import QuantEmbedding, QuantLinear, QuantRecurrent
from rnnslim.quantize.qat import QATRecurrent
from rnnslim.quantize.qtensor import logical_parameters
from rnnslim.quantize.targets import Target


def _model(cell="lstm", input_kind=InputKind.EMBEDDING):
    torch.manual_seed(0)
    spec = ModelSpec(cell=cell, input_kind=input_kind, input_size=16, embed_size=64,
                     layers=[LayerShape(hidden_size=64), LayerShape(hidden_size=64)], output_size=16)
    return SequenceModel(spec).eval()


def test_targets_and_filter_select_layers():
    m = quantize_(_model(), WeightOnly(bits=4, targets=(Target.RNN,)), filter=lambda path, mod: path.endswith("1"))
    assert isinstance(m.rnn.layers[1], QuantRecurrent)
    assert isinstance(m.rnn.layers[0], nn.LSTM) and isinstance(m.embedding, nn.Embedding)
    # a second call quantizes what is still float, and leaves quantized layers alone
    quantize_(m, HalfPrecision(dtype="bf16"))
    assert isinstance(m.embedding, QuantEmbedding) and isinstance(m.decoder, QuantLinear)
    assert m.rnn.layers[0].fmt.describe() == "bf16" and m.rnn.layers[1].fmt.describe() == "int4 g64 sym"
    f = _model(input_kind=InputKind.LINEAR)
    quantize_(f, WeightOnly(bits=8, group_size=None, targets=(Target.INPUT_PROJ,)))
    assert isinstance(f.input_proj, QuantLinear) and isinstance(f.decoder, nn.Linear)


def test_works_on_plain_torch_models():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(16, 32, num_layers=2, batch_first=True, bidirectional=True)
            self.head = nn.Linear(64, 4)

        def forward(self, x):
            return self.head(self.lstm(x)[0][:, -1])

    net = Net().eval()
    x = torch.randn(3, 10, 16)
    ref = net(x)
    quantize_(net, WeightOnly(bits=8, group_size=None, targets=(Target.RNN, Target.LINEAR)))
    assert isinstance(net.lstm, QuantRecurrent) and isinstance(net.head, QuantLinear)
    assert torch.allclose(net(x), ref, atol=2e-2)


def test_qat_verb_prepares_and_converts():
    m = quantize_(_model("gru"), QAT(weights=Ternary(group_size=32)))
    assert isinstance(m.rnn.layers[0], QATRecurrent)
    assert [h["op"] for h in m.history] == ["qat_prepare"]
    quantize_(m, QAT(step="convert"))
    assert isinstance(m.rnn.layers[0], QuantRecurrent) and m.rnn.layers[0].fmt.describe() == "ternary g32"


def test_pruned_then_quantized_stays_sparse_and_smaller_on_disk(tmp_path):
    dense, pruned = _model(), _model()
    with torch.no_grad():
        for layer in pruned.rnn.layers:
            for name, p in layer.named_parameters():
                if name.startswith("weight"):
                    p[p.abs() < p.abs().flatten().kthvalue(int(0.9 * p.numel())).values] = 0  # 90% sparse
    zeros = pruned.rnn.layers[0].weight_hh_l0 == 0
    assert zeros.float().mean() > 0.89
    for m in (dense, pruned):
        quantize_(m, WeightOnly(bits=4, group_size=32, entropy_coding=True, targets=(Target.RNN,)))
    assert torch.all(pruned.rnn.layers[0].weight_hh_l0[zeros] == 0)  # symmetric quantization keeps zeros exact
    a = artifact_bytes(save_model(dense, tmp_path / "dense"))
    b = artifact_bytes(save_model(pruned, tmp_path / "pruned"))
    assert b < 0.75 * a
    x = torch.randint(0, 16, (9, 2))
    assert torch.equal(load_model(tmp_path / "pruned")(x)[0], pruned(x)[0])


def test_int8_configs_are_dispatched_to_the_int8_verb():
    from rnnslim.quantize.int8 import Int8Config

    m = quantize_(_model(), Int8Config())
    assert type(m.rnn.layers[0]).__name__.startswith("Int8")
    with pytest.raises(ValueError, match="no calibration"):
        quantize_(_model(), WeightOnly(bits=4), calibration=[torch.zeros(3, 1, dtype=torch.long)])


def test_tied_embedding_and_logical_parameter_count(tmp_path):
    spec = ModelSpec(cell="gru", input_kind=InputKind.EMBEDDING, input_size=16, embed_size=32,
                     layers=[LayerShape(hidden_size=32)], output_size=16, tie_weights=True)
    m = SequenceModel(spec).eval()
    n_float = sum(p.numel() for p in m.parameters())
    quantize_(m, WeightOnly(bits=4, group_size=32))
    assert logical_parameters(m)[0] == n_float + 16 * 32  # the tied table is now stored twice
    x = torch.randint(0, 16, (7, 2))
    assert torch.equal(load_model(save_model(m, tmp_path / "tied"))(x)[0], m(x)[0])


def test_clear_errors():
    with pytest.raises(TypeError, match="quantize_ does not know"):
        quantize_(_model(), {"bits": 4})
    with pytest.raises(ValueError, match="2 to 8 bits"):
        WeightOnly(bits=1)
    # a group size that does not divide the columns is fitted, not an error (see the next test)
    assert "does not divide" in quantize_(_model(), WeightOnly(bits=4, group_size=48)).history[-1]["layers"][0]["note"]
    with pytest.raises(ValueError, match="no float layers"):
        quantize_(quantize_(_model(), KMeans(clusters=4)), KMeans(clusters=4))
    with pytest.raises(ValueError):
        WeightOnly(targets=("attention",))


def test_group_size_is_fitted_to_the_columns():
    """200 input columns: int4 g64 quantizes with group 50 (largest divisor <= 64) instead of failing;
    a layer whose columns share no divisor >= 8 (13 and 200) gets one scale per row."""
    import torch
    from torch import nn

    from rnnslim.quantize.api import WeightOnly, quantize_

    for cell, inputs, fmt, note in ((nn.LSTM, 200, "g50", "group 50"), (nn.GRU, 13, "channel", "one scale per row")):
        m = nn.Sequential()
        m.rnn = cell(inputs, 200)
        x = torch.randn(5, 2, inputs)
        ref = m.rnn(x)[0]
        quantize_(m, WeightOnly(bits=4, group_size=64))
        rec = m.history[-1]["layers"][0]
        assert fmt in rec["format"] and note in rec["note"]
        assert (m.rnn(x)[0] - ref).abs().max() < 0.1


def test_failed_quantization_leaves_every_layer_as_it_was(monkeypatch):
    import torch

    from rnnslim.quantize import api

    m = _model()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    calls = {"n": 0}
    real = api.quantize_layer

    def flaky(mod, fmt):  # the second layer fails after the first was swapped in
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("disk full")
        return real(mod, fmt)

    monkeypatch.setattr(api, "quantize_layer", flaky)
    with pytest.raises(RuntimeError, match="disk full"):
        quantize_(m, WeightOnly(bits=4))
    after = m.state_dict()
    assert list(after) == list(before) and all(torch.equal(before[k], after[k]) for k in before)
