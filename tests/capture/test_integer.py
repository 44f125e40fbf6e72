"""A captured user module goes through the fully integer int8 path like any SequenceModel:
quantize_int8_(integer, calibration) -> IntegerRunner bit for bit -> C export bit-exact, and
the user's own calling convention (user_view) runs the integer model."""

from __future__ import annotations

import copy

import pytest
import torch
from compilers import needs_cc
from torch.nn import functional as F

from rnnslim.capture import capture, user_view
from rnnslim.export.formats import export_model
from rnnslim.quantize.int8 import Int8Config, Int8Mode, IntegerRunner, quantize_int8_
from tests.capture.user_modules import ExamplesWordLM, KeywordGRU


def _integer(model, calibration):
    return quantize_int8_(copy.deepcopy(model), Int8Config(mode=Int8Mode.INTEGER), calibration=calibration)


@pytest.fixture(scope="module")
def word_lm():
    torch.manual_seed(0)
    m = ExamplesWordLM("LSTM", tie_weights=True).eval()
    x = torch.randint(0, 30, (12, 4))
    model = capture(m, (x, m.init_hidden(4)))
    cal = [torch.randint(0, 30, (12, 4)) for _ in range(4)]  # time-major ids, as SequenceModel reads them
    return m, model, _integer(model, cal), x


@pytest.fixture(scope="module")
def keyword():
    torch.manual_seed(1)
    m = KeywordGRU().eval()
    x = torch.randn(6, 10, 13)
    model = capture(m, (x,))
    view = user_view(model)
    cal = [view.to_time_major(torch.randn(6, 10, 13)) for _ in range(4)]  # the user's batches, time major
    return m, model, _integer(model, cal), x


def test_user_view_runs_the_integer_word_lm_in_the_users_loop(word_lm):
    m, model, q, x = word_lm
    hidden = m.init_hidden(4)
    with torch.no_grad():
        ref, _ = m(x, hidden)
        out, h = user_view(q)(x, hidden)
    assert out.shape == ref.shape and h[0].shape == hidden[0].shape and h[1].shape == hidden[1].shape
    assert torch.allclose(out.exp().sum(1), torch.ones(out.shape[0]), atol=1e-4)  # log_softmax applied after
    target = (x + 3) % 30
    loss_f, loss_q = F.nll_loss(ref, target.view(-1)), F.nll_loss(out, target.view(-1))
    assert abs(float(loss_q) - float(loss_f)) < 0.05 * float(loss_f)


def test_integer_runner_equals_the_integer_reference(word_lm, keyword):
    _, _, q, x = word_lm
    runner = IntegerRunner(q)
    with torch.no_grad():
        logits = q(x)[0]  # (T, B, V) time major, logits
    for b in range(x.shape[1]):
        assert torch.equal(torch.as_tensor(runner.run_sequence(x[:, b])), logits[:, b])
    _, kmodel, kq, kx = keyword
    kview = user_view(kq)
    with torch.no_grad():
        klogits = kq(kview.to_time_major(kx))[0]  # (B, classes): last step
    runner = IntegerRunner(kq)
    for b in range(kx.shape[0]):
        assert torch.equal(torch.as_tensor(runner.run_sequence(kx[b])), klogits[b])


@needs_cc
def test_c_export_of_a_captured_model_is_bit_exact(word_lm, keyword, tmp_path):
    for name, (_, _, q, _) in {"lm": word_lm, "kws": keyword}.items():
        facts = export_model(q, "c", tmp_path / name, check_streams=20)
        assert facts["check"]["bit_exact"] is True and facts["check"]["streams"] == 20


@needs_cc
def test_c_header_says_the_caller_applies_the_output_activation(word_lm, tmp_path):
    _, _, q, _ = word_lm
    export_model(q, "c", tmp_path / "lm", name="lm", check_streams=2)
    header = " ".join((tmp_path / "lm" / "lm.h").read_text().replace("*", " ").split())
    assert "applied log_softmax over the LM_OUTPUTS outputs" in header
