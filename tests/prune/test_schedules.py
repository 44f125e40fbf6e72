"""AGP cubic schedule values and pruning points."""

import pytest

from rnnslim.prune.schedules import AGPSchedule, agp_sparsity


def test_agp_values():
    s = AGPSchedule(initial_sparsity=0.1, final_sparsity=0.9, start_step=10, end_step=110, frequency=25)
    assert s.sparsity_at(0) == 0.0
    assert s.sparsity_at(10) == pytest.approx(0.1)
    assert s.sparsity_at(60) == pytest.approx(0.9 + (0.1 - 0.9) * 0.5**3)  # = 0.8
    assert s.sparsity_at(110) == 0.9 and s.sparsity_at(500) == 0.9
    assert agp_sparsity(35, 0.0, 0.8, 10, 110) == pytest.approx(0.8 * (1 - 0.75**3))


def test_agp_is_monotone_and_front_loaded():
    s = AGPSchedule(final_sparsity=0.9, end_step=100, frequency=1)
    vals = [s.sparsity_at(t) for t in range(101)]
    assert all(b >= a for a, b in zip(vals, vals[1:]))
    assert vals[50] - vals[0] > vals[100] - vals[50]  # most of the pruning happens early


def test_points():
    s = AGPSchedule(final_sparsity=0.5, start_step=5, end_step=27, frequency=10)
    assert [t for t, _ in s.points()] == [5, 15, 25, 27]
    assert s.points()[-1][1] == 0.5
    assert not s.is_prune_step(4) and not s.is_prune_step(28)


def test_invalid_schedules():
    with pytest.raises(ValueError, match="must be after"):
        AGPSchedule(final_sparsity=0.5, start_step=10, end_step=10)
    with pytest.raises(ValueError, match="below initial"):
        AGPSchedule(final_sparsity=0.2, initial_sparsity=0.5, end_step=10)
