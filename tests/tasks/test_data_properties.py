"""Property test of the forecast / classify readers (bounded; benchmarks/fuzz_data.py runs long):
any table either builds a task whose features are finite (NaN = missing) or raises a one-line
ValueError / FileNotFoundError, never another exception."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnslim.tasks import make_task

CELL = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=64).map(repr),
                 st.sampled_from(["", "x", "1e400", "-0", " 3 ", "\u00e9"]), st.integers(-10**6, 10**6).map(str))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(header=st.lists(st.sampled_from(["a", "b", "c", "a "]), min_size=1, max_size=3),
       rows=st.lists(st.lists(CELL, min_size=0, max_size=4), min_size=0, max_size=40))
def test_forecast_tables_build_or_fail_clearly(header, rows):
    text = "\n".join([",".join(header)] + [",".join(r) for r in rows]) + "\n"
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "t.csv"
        p.write_text(text)
        try:
            task = make_task("forecast", p)
            for b in task.batches("train", batch_size=2, seq_len=2):
                x = b.inputs.numpy()
                assert not np.isinf(x).any()
                break
        except (ValueError, FileNotFoundError) as e:
            assert str(e) and "\n" not in str(e).strip()
