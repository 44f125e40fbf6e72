"""Paired block timing: the order rotates, a slow window that hits both blocks of a round cancels in
their ratio, and the band is the range of the per-repeat medians. Time is simulated (no real clock)."""

import pytest

from rnnslim.measure.interleaved import median_step_ms, paired_ratio, time_interleaved


class SimulatedMachine:
    """A nanosecond clock advanced only by the steps: a step costs `cost` ns, times `slow` while
    the simulated time lies inside one of `windows` (start, end) ns."""

    def __init__(self, windows=(), slow=1.3):
        self.now, self.windows, self.slow, self.order = 0, windows, slow, []

    def clock(self) -> int:
        return self.now

    def step(self, label: str, cost: int):
        def run():
            factor = self.slow if any(a <= self.now < b for a, b in self.windows) else 1.0
            self.now += int(cost * factor)
            self.order.append(label)
        return run


def test_blocks_rotate_and_time_per_step():
    m = SimulatedMachine()
    r = time_interleaved({"a": m.step("a", 2000), "b": m.step("b", 1000)}, block=3, rounds=2, repeats=2,
                         warmup=1, clock=m.clock)
    # warm-up a, b once each; then rounds a-b, b-a, a-b, b-a (rotation continues across repeats)
    assert "".join(m.order) == "ab" + "aaabbb" + "bbbaaa" + "aaabbb" + "bbbaaa"
    assert r["block_ms"]["a"] == [[0.002, 0.002], [0.002, 0.002]]
    assert r["block_ms"]["b"] == [[0.001, 0.001], [0.001, 0.001]]
    p = paired_ratio(r, "a", "b")
    assert p["x"] == 2.0 and p["band"] == [2.0, 2.0] and p["per_repeat"] == [2.0, 2.0]
    assert median_step_ms(r, "a") == 0.002


def test_a_slow_window_over_both_blocks_of_a_round_cancels():
    # a 30 % slow window covering whole rounds: every block in it is slower, but both members
    # of a pair are, so the paired ratio stays exact
    m = SimulatedMachine(windows=[(60_000, 180_000)])
    r = time_interleaved({"dense": m.step("dense", 1500), "sparse": m.step("sparse", 1000)}, block=10,
                         rounds=20, repeats=3, warmup=0, clock=m.clock)
    assert max(max(rep) for rep in r["block_ms"]["dense"]) > 1.2 * 0.0015  # the window was hit
    p = paired_ratio(r, "dense", "sparse")
    assert p["x"] == pytest.approx(1.5, rel=1e-3)
    assert p["band"][0] == pytest.approx(1.5, rel=1e-3) and p["band"][1] == pytest.approx(1.5, rel=1e-3)


def test_bad_arguments_name_the_problem():
    with pytest.raises(ValueError, match="block >= 1"):
        time_interleaved({"a": lambda: None}, block=0)
    with pytest.raises(ValueError, match="step function"):
        time_interleaved({})
