"""Dynamic int8 on users' own modules: word LMs (LSTM / GRU, tied or not, batch_first), a
bidirectional tagger and a CNN + GRU classifier keep their forward contract."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from user_models import HiddenAttrLM

from rnnslim.prune.structured.history import load_edited, save_edited
from rnnslim.quantize.int8 import Int8Config, quantize_int8_
from rnnslim.recurrent.torch_contract import TorchContractStack


class Tagger(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(40, 12)
        self.rnn = nn.GRU(12, 20, num_layers=2, bidirectional=True, batch_first=True)
        self.out = nn.Linear(40, 7)

    def forward(self, x):
        return self.out(self.rnn(self.emb(x))[0])


class ConvGRU(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(3, 16, 5, padding=2)
        self.rnn = nn.GRU(16, 24, batch_first=True)
        self.head = nn.Linear(24, 4)

    def forward(self, x):  # x (B, T, 3)
        h = torch.relu(self.conv(x.transpose(1, 2))).transpose(1, 2)
        return self.head(self.rnn(h)[0][:, -1])


class TiedGRULM(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Embedding(50, 32)
        self.rnn = nn.GRU(32, 32, 2)
        self.decoder = nn.Linear(32, 50)
        self.decoder.weight = self.encoder.weight

    def forward(self, x, hidden=None):
        out, hidden = self.rnn(self.encoder(x), hidden)
        return self.decoder(out), hidden


CASES = [
    ("word LM, LSTM", lambda: HiddenAttrLM(), lambda: torch.randint(0, 50, (9, 3))),
    ("word LM, tied GRU", TiedGRULM, lambda: torch.randint(0, 50, (9, 3))),
    ("bidirectional tagger", Tagger, lambda: torch.randint(0, 40, (3, 11))),
    ("CNN + GRU classifier", ConvGRU, lambda: torch.randn(4, 15, 3)),
]


def _out(m, x):
    with torch.no_grad():
        y = m(x)
    return y[0] if isinstance(y, tuple) else y


@pytest.mark.parametrize("mode", ["dynamic", "static"])
@pytest.mark.parametrize("name,make,inputs", CASES, ids=[c[0] for c in CASES])
def test_int8_keeps_the_contract_and_the_outputs(tmp_path, name, make, inputs, mode):
    torch.manual_seed(0)
    m, x = make().eval(), inputs()
    ref = _out(m, x)
    calib = [inputs() for _ in range(3)] + [x] if mode == "static" else None
    quantize_int8_(m, Int8Config(mode=mode), calibration=calib)
    assert isinstance(m.rnn, TorchContractStack)
    got = _out(m, x)
    assert got.shape == ref.shape
    # int8 weights per row; activations per row at run time (dynamic) or per tensor from calibration (static)
    assert (got - ref).abs().max() <= (0.05 if mode == "dynamic" else 0.1) * ref.abs().max() + 1e-3
    save_edited(m, tmp_path / "q")
    back = load_edited(make().eval(), tmp_path / "q")
    assert torch.equal(_out(back, x), got)


def test_state_in_torch_layout_and_clear_refusals():
    torch.manual_seed(0)
    m = HiddenAttrLM().eval()
    x = torch.randint(0, 50, (5, 2))
    ref_y, (h, c) = m(x)
    quantize_int8_(m, Int8Config(mode="dynamic"))
    y, (h2, c2) = m(x, (h, c))  # the user's own state, torch's (L*D, B, H) shapes
    assert h2.shape == h.shape == (2, 2, 32) and c2.shape == c.shape
    assert m.rnn.num_layers == 2 and m.rnn.hidden_size == 32
    plain = HiddenAttrLM().eval()
    before = {k: v.clone() for k, v in plain.state_dict().items()}
    with pytest.raises(ValueError, match=r"fully integer .*SequenceModel layout.*capture it first \(from rnnslim.capture "
                                         r"import capture; seq = capture\(model, example_inputs\)"):
        quantize_int8_(plain, Int8Config(mode="integer"), calibration=[x])
    with pytest.raises(ValueError, match="static int8 needs calibration"):
        quantize_int8_(plain, Int8Config(mode="static"))
    assert all(torch.equal(before[k], v) for k, v in plain.state_dict().items())
    with pytest.raises(ValueError, match="no torch LSTM"):
        quantize_int8_(nn.Sequential(nn.Linear(3, 3)), Int8Config(mode="dynamic"))


def test_qat_prepare_train_convert_on_a_user_module():
    """QAT on a plain module with 32 input columns (group 64 fitted to 32); converted == fake-quantized."""
    from rnnslim.quantize.api import QAT, WeightOnly, quantize_
    from rnnslim.quantize.qat import convert_qat_

    torch.manual_seed(0)
    m, x = TiedGRULM().eval(), torch.randint(0, 50, (6, 2))
    quantize_(m, QAT(weights=WeightOnly(bits=4, group_size=64)))
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    for _ in range(3):
        loss = m(x)[0].logsumexp(-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    fake = _out(m.eval(), x)
    convert_qat_(m)
    assert torch.allclose(_out(m, x), fake, atol=1e-5)


@pytest.mark.parametrize("mode", ["dynamic", "static"])
def test_the_examples_evaluation_loop_runs_after_int8(mode, tmp_path):
    """The PyTorch examples word LM builds its state with next(self.parameters()).new_zeros(...):
    after int8 (no float weight left) that still gives a float32 tensor, and the examples' own
    evaluate() loop runs, on the quantized model and on its save_edited / load_edited copy, also
    after prune_units_ updated `nhid` first."""
    import copy

    from examples_lm import ExamplesWordLM, corpus, evaluate, train_briefly

    from rnnslim.prune import StructuredPruning, prune_units_

    data = corpus()
    torch.manual_seed(0)
    float_model = train_briefly(ExamplesWordLM("LSTM"), data)
    ref = evaluate(float_model, data)
    for prune in (False, True):
        m = copy.deepcopy(float_model)
        if prune:
            prune_units_(m, StructuredPruning(ratio=0.25), example_inputs=lambda mod: (data[:5], mod.init_hidden(4)))
            assert m.nhid == 9
        calib = [(data[i:i + 10], m.init_hidden(4)) for i in range(0, 40, 10)] if mode == "static" else None
        quantize_int8_(m, Int8Config(mode=mode), calibration=calib)
        assert next(m.parameters()).dtype == torch.float32 and all(p.numel() == 0 for p in m.parameters())
        loss = evaluate(m, data)
        if not prune:
            assert loss == pytest.approx(ref, rel=0.03)
        m.load_state_dict(m.state_dict())  # strict round trip: the anchors are not in it, not missing
        save_edited(m, tmp_path / f"{mode}{prune}")
        back = load_edited(ExamplesWordLM("LSTM"), tmp_path / f"{mode}{prune}")
        assert back.nhid == m.nhid and evaluate(back, data) == pytest.approx(loss, abs=1e-6)
