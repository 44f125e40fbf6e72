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
    assert 0 < lo <= r["median_ms"] <= hi < 1000
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


def test_throughput_counts_batch_times_steps():
    r = throughput(tiny(), threads=1, batch=4, seq_len=8, repeats=2)
    assert (r["batch"], r["seq_len"], r["threads"]) == (4, 8, 1)
    assert abs(r["steps_per_s"] - 32 / r["seconds"]) / r["steps_per_s"] < 0.5  # median rate vs median time
    assert r["steps_per_s"] > 0


def test_user_module_batch_fn():
    lstm = nn.LSTM(3, 5)
    x = torch.randn(8, 4, 3)
    r = throughput(batch_fn=lambda: lstm(x), batch=4, seq_len=8, repeats=1)
    assert r["steps_per_s"] > 0


def test_median_of_medians_ignores_one_slow_round():
    import time

    calls = {"n": 0}

    def step():
        calls["n"] += 1
        if 10 < calls["n"] <= 20:  # round 2 of 5 is slow
            time.sleep(0.003)

    r = time_stream(step, steps=10, repeats=5, warmup=0)
    assert r["median_ms"] < 1.0 and r["spread_ms"][1] > 2.0
