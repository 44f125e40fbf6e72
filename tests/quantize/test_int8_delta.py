"""Delta step of the integer kernel (delta.py): exact at thresholds 0 and 1, bit-equal to the
torch twin (delta_reference.py) at any threshold, MAC counters, reset, feature models, format."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest
import torch
from int8_models import VARIANTS, delta_model, kernel_available, needs_kernel

from rnnslim.models.sequence import Readout, SequenceModel
from rnnslim.quantize.int8 import IntegerRunner
from rnnslim.quantize.int8.delta import delta_stats_of, delta_thresholds, pack_columns, set_delta_threshold_
from rnnslim.quantize.int8.delta_reference import delta_reference
from rnnslim.quantize.int8.kernel import KernelVariant
from rnnslim.quantize.int8.packed import _array_bytes


@lru_cache(maxsize=None)
def _inputs(kind: str, T: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if kind == "embedding":
        return torch.randint(0, 30, (T,), generator=g)
    return torch.cumsum(0.3 * torch.randn(T, 13, generator=g), 0)  # slowly drifting features: deltas are small


def _run(runner: IntegerRunner, x: torch.Tensor, state=None):
    return runner.run(x, state) if runner.features is None else runner.run_features(x, state)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("thr", [0, 1])
def test_lossless_thresholds_equal_the_dense_step(variant, cell, thr):
    # threshold 0 transmits every column, threshold 1 skips unchanged codes only: both exact
    q = delta_model(cell)
    x = _inputs("embedding", 200)
    dense, dense_state = IntegerRunner(q, variant).run(x)
    runner = IntegerRunner(q, variant, delta=thr)
    logits, state = runner.run(x)
    assert torch.equal(logits, dense) and torch.equal(state.buf, dense_state.buf)
    stats = runner.delta_stats(state)
    assert (stats.skipped_fraction == 0.0) if thr == 0 else (stats.macs <= stats.dense_macs)


def _case(v: KernelVariant, cell: str, kind: str):
    return pytest.param(v, cell, kind, id=f"{v.value}-{cell}-{kind}",
                        marks=pytest.mark.skipif(not kernel_available(v), reason=f"{v.value} kernel not buildable"))


# every variant on two models, the native kernel on the other cells / inputs
LOSSY = ([_case(v, c, k) for v in KernelVariant for c, k in (("lstm", "linear"), ("gru", "embedding"))]
         + [_case(KernelVariant.NATIVE, c, k) for c, k in (("lstm", "embedding"), ("gru", "identity"),
                                                          ("rnn_tanh", "embedding"), ("rnn_tanh", "linear"))])


@pytest.mark.parametrize("variant, cell, kind", LOSSY)
def test_kernel_equals_torch_twin_at_lossy_thresholds(variant, cell, kind):
    q = delta_model(cell, kind)
    x = _inputs(kind, 120)
    thr = {0: 3, 1: 6}
    runner = IntegerRunner(q, variant, delta=thr)
    logits, state = _run(runner, x)
    ref, counters = delta_reference(q, x, delta=thr)
    assert torch.equal(logits, ref)
    assert np.array_equal(state.delta[: counters.size].numpy(), counters)
    stats = runner.delta_stats(state)
    assert 0.0 < stats.skipped_fraction < 1.0  # these thresholds skip some columns, not all
    # MACs = transmitted columns x rows; layer 0 of a token model runs W_ih dense (no columns counted)
    ly0 = stats.layers[0]
    assert ly0.macs == (int(counters[2]) + int(counters[3])) * ly0.rows
    assert ly0.x_columns == (0 if kind == "embedding" else q.rnn.layers[0].input_size)
    assert stats.dense_macs == 120 * sum((ly.x_columns + ly.h_columns) * ly.rows for ly in stats.layers)


@needs_kernel
def test_step_equals_run_and_reset_restarts_the_stream():
    q = delta_model("lstm")
    runner = IntegerRunner(q, delta=5)
    x = _inputs("embedding", 60)
    logits, state = runner.run(x)
    stepped = torch.stack([runner.step(int(t), state).clone() for t in x])  # continues the same stream
    state.reset()
    assert runner.delta_stats(state).steps == 0
    again = torch.stack([runner.step(int(t), state).clone() for t in x])
    assert torch.equal(again, logits) and not torch.equal(stepped, logits)
    assert runner.delta_stats().steps == 60  # the last state stepped
    fresh = runner.init_state()
    assert torch.equal(runner.run(x, fresh)[0], logits)
    clone = state.clone()
    assert torch.equal(runner.run(x[:10], clone)[0], runner.run(x[:10], state)[0])


@needs_kernel
def test_thresholds_are_saved_with_the_model_and_used_by_default(tmp_path):
    from rnnslim.io.format import load_model, save_model

    q = delta_model("gru", hidden=(24, 16))
    import copy

    m = set_delta_threshold_(copy.deepcopy(q), {1: 4})
    assert delta_thresholds(m) == [None, 4]
    save_model(m, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert delta_thresholds(loaded) == [None, 4]
    x = _inputs("embedding", 80)
    runner = IntegerRunner(loaded)
    assert runner.delta and torch.equal(runner.run(x)[0], delta_reference(q, x, delta={1: 4})[0])
    assert not IntegerRunner(loaded, delta=None).delta  # an explicit override wins
    with pytest.raises(ValueError, match="layers"):
        set_delta_threshold_(m, {5: 1})
    with pytest.raises(ValueError, match=r"\[0, 255\]"):
        set_delta_threshold_(m, [1, -2])
    assert delta_thresholds(m) == [None, 4]  # all or nothing


def test_bad_targets_get_clear_errors():
    q = delta_model("lstm", hidden=(16,))
    float_model = SequenceModel(q.spec)
    with pytest.raises(ValueError, match="fully integer"):
        set_delta_threshold_(float_model, 2)
    with pytest.raises(ValueError, match="2-D int8"):
        pack_columns(np.zeros((3, 3), dtype=np.int16))
    w = np.arange(70 * 3, dtype=np.int64).astype(np.int8).reshape(70, 3)  # 70 rows: two 64-row chunks
    cols = pack_columns(w).reshape(2, 3, 64)  # (chunk, column, row in chunk)
    assert cols[0, 1, 5] == w[5, 1] and cols[1, 2, 3] == w[67, 2] and cols[1, 0, 6:].tolist() == [0] * 58


@needs_kernel
def test_dense_runner_refuses_delta_stats_and_a_delta_runner_needs_its_state():
    q = delta_model("lstm")
    with pytest.raises(ValueError, match="no delta layers"):
        IntegerRunner(q).delta_stats()
    runner = IntegerRunner(q, delta=2)
    with pytest.raises(ValueError, match="init_state"):
        runner.run(_inputs("embedding", 3), IntegerRunner(q).init_state())
    stats = delta_stats_of(runner.program, np.zeros(8, dtype=np.int64))
    assert stats.steps == 0 and stats.skipped_fraction == 0.0


def test_torch_forward_of_a_delta_model_is_batched_and_restarts_per_call():
    import copy

    q = set_delta_threshold_(copy.deepcopy(delta_model("lstm", "linear", hidden=(24, 16))), 4)
    x = _inputs("linear", 30, seed=2)
    y = _inputs("linear", 30, seed=3)
    both, _ = q(torch.stack([x, y], 1))  # (T, 2, F): each row its own delta state
    assert torch.equal(both[:, 0], q(x[:, None])[0][:, 0]) and torch.equal(both[:, 1], q(y[:, None])[0][:, 0])
    dense, _ = delta_model("lstm", "linear", hidden=(24, 16))(x[:, None])
    assert not torch.equal(both[:, 0], dense[:, 0])  # threshold 4 changes the outputs


@needs_kernel
def test_readout_last_feature_model_whole_sequence():
    import copy

    q = copy.deepcopy(delta_model("gru", "linear", hidden=(24,)))
    q.spec = q.spec.model_copy(update={"readout": Readout.LAST})
    set_delta_threshold_(q, 3)
    x = _inputs("linear", 40, seed=4)
    runner = IntegerRunner(q)
    assert torch.equal(runner.run_sequence(x), q(x[:, None])[0][0])  # the forecast: the last step's output
    assert runner.workspace_bytes(0) == runner.program.workspace_fixed_bytes
    assert runner.delta_bytes == runner.program.delta_bytes
    # the RAM figure counts one stream's delta state (it did not before)
    p = runner.program
    assert p.delta_bytes > 0 and p.resident_bytes() == (_array_bytes(p) + p.scratch_bytes() + 2 * p.state_len
                                                         + p.delta_bytes)


@needs_kernel
@pytest.mark.parametrize("cell, kind", [("lstm", "embedding"), ("gru", "linear")])
def test_whole_sequence_run_uses_the_delta_step(cell, kind):
    import copy

    q = set_delta_threshold_(copy.deepcopy(delta_model(cell, kind)), 5)
    x = _inputs(kind, 50, seed=6)
    runner = IntegerRunner(q)
    assert torch.equal(runner.run_sequence(x), _run(runner, x)[0])
    assert runner.workspace_bytes(50) == runner.program.workspace_bytes(50)
