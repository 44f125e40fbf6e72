"""Streaming latency and throughput: structure, sane values, thread restoration, user callables."""

import torch
from torch import nn

from rnnslim.measure.latency import streaming_latency, throughput, time_stream
from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, SequenceModel


def tiny(kind=InputKind.EMBEDDING, readout="all") -> SequenceModel:
    spec = ModelSpec(cell="gru", input_kind=kind, input_size=9, embed_size=8, layers=[LayerShape(hidden_size=8)] * 2,
                     output_size=9, readout=readout)
    return SequenceModel(spec)


def check_latency(r: dict, threads: int, steps: int, repeats: int) -> None:
    assert set(r) >= {"median_ms", "spread_ms", "threads", "steps", "repeats"}
    assert (r["threads"], r["steps"], r["repeats"]) == (threads, steps, repeats)
    lo, hi = r["spread_ms"]
    assert 0 < lo <= r["median_ms"] <= hi  # ordered; no bound on time: tests never assert on speed
    assert len(r["medians_ms"]) == repeats


def test_streaming_latency_of_a_sequence_model_restores_threads_and_mode():
    m = tiny().train()
    before = torch.get_num_threads()
    r = streaming_latency(m, threads=1, steps=20, repeats=3, warmup=2)
    check_latency(r, 1, 20, 3)
    assert torch.get_num_threads() == before
    assert m.training  # put back as it was


def test_features_input_and_two_threads():
    r = streaming_latency(tiny(InputKind.LINEAR, "last"), threads=2, steps=10, repeats=2, warmup=1)
    check_latency(r, 2, 10, 2)


def test_state_is_carried_between_steps():
    seen = []

    def step(state):
        seen.append(state)
        return (state or 0) + 1

    streaming_latency(step_fn=step, steps=5, repeats=2, warmup=3)
    assert seen == [None, *range(1, 13)]


def test_sequence_model_step_receives_its_previous_state():
    m = tiny()
    calls = []
    orig = m.forward

    def spy(x, state=None):
        calls.append((tuple(x.shape), state is None))
        return orig(x, state)

    m.forward = spy
    streaming_latency(m, steps=3, repeats=1, warmup=1)
    assert calls[0] == ((1, 1), True)
    assert all(shape == (1, 1) and not fresh for shape, fresh in calls[1:])


def scripted_clock(durations):
    """A clock whose consecutive (start, stop) readings are `durations` apart: what is timed
    is exactly these numbers, whatever the machine's load."""
    readings = iter([t for i, d in enumerate(durations) for t in (10.0 * i, 10.0 * i + d)])
    return lambda: next(readings)


def test_throughput_counts_batch_times_steps():
    # 3 passes of 4 x 8 = 32 steps taking 2 s, 4 s and 1 s: rates 16, 8, 32 steps/s
    r = throughput(tiny(), threads=1, batch=4, seq_len=8, repeats=3, clock=scripted_clock([2.0, 4.0, 1.0]))
    assert (r["batch"], r["seq_len"], r["threads"], r["repeats"]) == (4, 8, 1, 3)
    assert r["steps_per_s"] == 16.0 and r["seconds"] == 2.0  # medians of rates and of times
    assert r["spread_steps_per_s"] == [8.0, 32.0]


def test_throughput_really_runs_the_model():
    r = throughput(tiny(), threads=1, batch=4, seq_len=8, repeats=2)
    assert r["steps_per_s"] > 0 and r["seconds"] > 0


def test_user_module_batch_fn():
    lstm = nn.LSTM(3, 5)
    x = torch.randn(8, 4, 3)
    r = throughput(batch_fn=lambda: lstm(x), batch=4, seq_len=8, repeats=1)
    assert r["steps_per_s"] > 0


def test_median_of_medians_ignores_one_slow_round():
    # 5 rounds of 10 steps; every step takes 0.1 ms except in round 2 (3 ms): nanosecond readings
    durations = [3_000_000 if 10 <= i < 20 else 100_000 for i in range(50)]
    clock = scripted_clock(durations)
    calls = {"n": 0}

    def step():
        calls["n"] += 1

    r = time_stream(step, steps=10, repeats=5, warmup=2, clock=clock)
    assert calls["n"] == 52  # the warm-up steps run but are not timed
    assert r["medians_ms"] == [0.1, 3.0, 0.1, 0.1, 0.1]
    assert r["median_ms"] == 0.1 and r["spread_ms"] == [0.1, 3.0]
