"""The fused C step (kernel.c via IntegerRunner) equals the pure-integer reference bit for bit."""

from __future__ import annotations

import copy
from functools import lru_cache

import pytest
import torch
from int8_models import VARIANTS, feature_model, integer_model, needs_kernel, zero_tiles

from rnnslim.quantize.int8 import IntegerRunner
from rnnslim.quantize.int8.kernel import KernelUnavailable, KernelVariant, build_kernel


def _flat(state):
    return [t for layer in state for t in (layer if isinstance(layer, tuple) else (layer,))]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
@pytest.mark.parametrize("fold", [False, True])
def test_runner_equals_reference_bit_for_bit(variant, cell, fold):
    # hidden sizes 70 and 33 exercise the 16-lane vector loops and their scalar tails
    q = integer_model(cell)
    x = torch.randint(0, 30, (300,), generator=torch.Generator().manual_seed(1))
    ref, ref_state = q(x[:, None])
    runner = IntegerRunner(q, variant, fold_embedding=fold)
    logits, state = runner.run(x)
    assert torch.equal(logits, ref[:, 0])
    assert all(torch.equal(a, b) for a, b in zip(_flat(runner.state_to_torch(state, q)), _flat(ref_state)))


@needs_kernel
def test_step_equals_run_and_state_conversion():
    q = integer_model("lstm", hidden=(48, 48, 32))
    runner = IntegerRunner(q)
    x = torch.randint(0, 30, (50,))
    logits, _ = runner.run(x)
    state = runner.init_state()
    out = torch.empty(29)
    for t, tok in enumerate(x.tolist()):
        assert torch.equal(runner.step(tok, state), logits[t])
    assert torch.equal(runner.step(int(x[0]), state.clone(), out=out), runner.step(int(x[0]), state))
    # a state taken from the torch model continues exactly like the model
    _, st = q(x[:20, None])
    ref, _ = q(x[20:, None], st)
    cont, _ = runner.run(x[20:], runner.state_from_torch(st, q))
    assert torch.equal(cont, ref[:, 0])


@needs_kernel
def test_real_sized_layer_parity():
    """512-unit layers like the reference models (more rows than any test above)."""
    q = integer_model("gru", hidden=(512,), vocab=65, embed=512, out=65, seed=4)
    x = torch.randint(0, 65, (40,))
    ref, _ = q(x[:, None])
    assert torch.equal(IntegerRunner(q).run(x)[0], ref[:, 0])


@needs_kernel
def test_runner_errors():
    q = integer_model("lstm")
    runner = IntegerRunner(q)
    with pytest.raises(IndexError, match="vocabulary"):
        runner.step(30, runner.init_state())
    with pytest.raises(IndexError, match="position 2"):
        runner.run(torch.tensor([1, 2, -1]))
    with pytest.raises(ValueError, match="out must"):
        runner.step(1, runner.init_state(), out=torch.empty(3))
    bi = IntegerRunner(integer_model("gru", bidirectional=True))  # whole sequences only
    for stream in (lambda: bi.step(1, bi.init_state()), lambda: bi.run(torch.tensor([1, 2]))):
        with pytest.raises(ValueError, match="bidirectional.*run_sequence"):
            stream()
    with pytest.raises(IndexError, match="position 1"):
        runner.run_sequence(torch.tensor([1, 30, 2]))
    dyn = copy.deepcopy(q)
    dyn.decoder = torch.nn.Linear(33, 29)
    with pytest.raises(ValueError, match="decoder"):
        IntegerRunner(dyn)


def test_missing_compiler_is_reported(monkeypatch, tmp_path):
    monkeypatch.setenv("RNNSLIM_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CC", "/nonexistent/cc")
    with pytest.raises(KernelUnavailable, match="no C compiler"):
        build_kernel(KernelVariant.PORTABLE)


@needs_kernel
@pytest.mark.parametrize("cell_frac", [6, 12, 15])
def test_every_cell_state_format_matches(cell_frac):
    """cf < 12 shifts the cell state left into Q.12, cf > 12 rounds it right; both must agree."""
    q = integer_model("lstm", hidden=(40, 24))
    for layer in q.rnn.layers:
        layer.cell_frac = cell_frac
    x = torch.randint(0, 30, (200,))
    ref, _ = q(x[:, None])
    assert torch.equal(IntegerRunner(q).run(x)[0], ref[:, 0])


@needs_kernel
def test_stream_step_fn_for_latency_measurement():
    from rnnslim.measure.latency import streaming_latency

    runner = IntegerRunner(integer_model("gru"))
    out = streaming_latency(step_fn=runner.stream_step_fn(), steps=20, repeats=2, warmup=5)
    assert out["median_ms"] > 0 and out["steps"] == 20


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
def test_tile_sparse_runner_equals_reference(variant, cell):
    q = zero_tiles(integer_model(cell, hidden=(64, 33)))
    x = torch.randint(0, 30, (200,), generator=torch.Generator().manual_seed(2))
    ref, _ = q(x[:, None])
    sparse = IntegerRunner(q, variant, sparse=True)
    assert all(m.sparse for ly in sparse.program.layers for m in (ly.wx, ly.wh))
    assert torch.equal(sparse.run(x)[0], ref[:, 0])
    auto = IntegerRunner(q, variant)  # ~30 % of the tiles kept: "auto" picks the sparse layout
    assert auto.program.layers[1].wh.sparse and torch.equal(auto.run(x)[0], ref[:, 0])


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
@pytest.mark.parametrize("kind", ["identity", "linear"])
def test_feature_input_runner_equals_reference(variant, cell, kind):
    q = feature_model(cell, kind)
    # values beyond the calibrated range saturate; exact halves exercise round-half-even
    x = 3.0 * torch.randn(150, 13, generator=torch.Generator().manual_seed(4))
    x[:5] = torch.arange(-32, 33, dtype=torch.float32)[:65].reshape(5, 13) * 0.5 * float(q.rnn.layers[0].x_scale
                                                                                         if kind == "identity" else
                                                                                         q.input_proj.in_scale)
    ref, _ = q(x[:, None, :])
    runner = IntegerRunner(q, variant)
    logits, _ = runner.run_features(x)
    assert torch.equal(logits, ref[:, 0])
    state = runner.init_state()
    assert torch.equal(runner.step_features(x[0], state), ref[0, 0])
    with pytest.raises(TypeError, match="features"):
        runner.step(0, state)


@needs_kernel
def test_readout_last_is_the_final_step():
    q = feature_model("gru", "linear", readout="last")
    x = torch.randn(40, 13)
    ref, _ = q(x[:, None, :])  # (1, O): the last step only
    logits, _ = IntegerRunner(q).run_features(x)
    assert torch.equal(logits[-1], ref[0])


# --- whole sequence (run_sequence / rs_core_run), bidirectional layers ------------------------------------------

@lru_cache(maxsize=None)
def _sequence_model(cell: str, kind: str, bidirectional, readout: str):
    if kind == "embedding":
        return integer_model(cell, hidden=(40, 24), bidirectional=bidirectional, readout=readout)
    return feature_model(cell, kind, readout=readout, hidden=(40, 24), bidirectional=bidirectional)


def _sequence_input(kind: str, T: int, seed: int = 5) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 30, (T,), generator=g) if kind == "embedding" else 3.0 * torch.randn(T, 13, generator=g)


def _reference(q, x: torch.Tensor) -> torch.Tensor:
    ref, _ = q(x[:, None])  # (T, 1, O) for readout "all", (1, O) for "last"
    return ref[:, 0] if q.spec.readout.value == "all" else ref[0]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_run_sequence_equals_reference_bit_for_bit(variant, cell, bidirectional):
    """Embedding / identity / linear input x readout all / last, hidden (40, 24), from the zero state."""
    for kind in ("embedding", "identity", "linear"):
        x = _sequence_input(kind, 37)
        for readout in ("all", "last"):
            q = _sequence_model(cell, kind, bidirectional, readout)
            ref = _reference(q, x)
            for fold in ([False, True] if kind == "embedding" else [None]):
                runner = IntegerRunner(q, variant, fold_embedding=fold)
                assert runner.bidirectional == bidirectional
                out = runner.run_sequence(x)
                assert out.shape == ref.shape and torch.equal(out, ref), (kind, readout, fold)
                assert runner.workspace_bytes(37) == runner.program.workspace_bytes(37)


@needs_kernel
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
def test_run_sequence_mixed_stacks_sparse_tiles_and_short_sequences(cell):
    # a bidirectional layer under a unidirectional one and the reverse, three sizes
    for flags in ([True, False, True], [False, True, False]):
        q = integer_model(cell, hidden=(33, 48, 17), bidirectional=flags, seed=3)
        runner = IntegerRunner(q)
        assert [ly.rev is not None for ly in runner.program.layers] == flags
        for T in (1, 2, 29):
            x = _sequence_input("embedding", T, seed=T)
            assert torch.equal(runner.run_sequence(x), _reference(q, x))
        assert runner.run_sequence(torch.zeros(0, dtype=torch.int64)).shape == (0, 29)
    q = zero_tiles(integer_model(cell, hidden=(64, 33), bidirectional=True))
    x = _sequence_input("embedding", 40)
    sparse = IntegerRunner(q, sparse=True)
    assert all(m.sparse for ly in sparse.program.layers for d in (ly, ly.rev) for m in (d.wx, d.wh))
    assert torch.equal(sparse.run_sequence(x), _reference(q, x))


@needs_kernel
def test_run_sequence_unidirectional_matches_streaming_and_checks_inputs():
    q = integer_model("lstm", hidden=(40, 24))
    runner = IntegerRunner(q)
    x = _sequence_input("embedding", 50)
    assert torch.equal(runner.run_sequence(x), runner.run(x)[0])
    last = IntegerRunner(feature_model("gru", "identity", readout="last", bidirectional=True))
    with pytest.raises(ValueError, match="at least one step"):
        last.run_sequence(torch.zeros(0, 13))
    with pytest.raises(ValueError, match="bidirectional"):
        last.step_features(torch.zeros(13), last.init_state())


def test_check_integer_model_streaming_versus_whole_sequence():
    from rnnslim.quantize.int8.runner import check_integer_model

    bi = integer_model("gru", hidden=(24,), bidirectional=True)
    with pytest.raises(ValueError, match="bidirectional: a streaming step cannot see the future"):
        check_integer_model(bi)
    check_integer_model(bi, whole_sequence=True)
    from rnnslim.quantize.int8.kernel_eval import kernel_runner

    why: list[str] = []  # evaluation / timing stream through the kernel: a bidirectional model keeps torch
    assert kernel_runner(bi, why) is None and "bidirectional" in why[0]
    mean = integer_model("gru", hidden=(24,), readout="mean")
    with pytest.raises(ValueError, match="mean"):
        check_integer_model(mean, whole_sequence=True)
