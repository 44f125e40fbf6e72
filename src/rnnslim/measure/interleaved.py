"""Paired latency of several streaming steps, timed in short alternating blocks.

Why: on a shared 2-core VM the speed of a core drifts in windows of a few to tens of
milliseconds (another tenant's cache and memory traffic: thread CPU time drifts with wall
time, so it is not steal). Two models timed one after the other, or in alternating rounds
of ~10 ms each, can land on opposite sides of such a window and read 30 % apart. Here each
round runs every step for one short block (`block` steps, well under a millisecond to a
few milliseconds, the order rotated every round), so the two blocks of one round see the
same conditions; the ratio of two steps is read round by round and summarised by its
median over the rounds of one repeat. The noise band is the range of those per-repeat
medians (the same "slowest-vs-fastest repeat" convention as time_stream's spread, but
each repeat is itself a paired measurement).

    r = time_interleaved({"dense": dense_step, "sparse": sparse_step}, block=20, rounds=100)
    paired_ratio(r, "dense", "sparse")   # {"x": 1.14, "band": [1.12, 1.16], ...}
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from rnnslim.measure.latency import gc_paused


def time_interleaved(steps: dict[str, Callable[[], Any]], block: int = 20, rounds: int = 100, repeats: int = 7,
                     warmup: int = 50, clock: Callable[[], int] = time.perf_counter_ns) -> dict:
    """Time every `steps[label]()` in `repeats` x `rounds` rounds of `block` steps each.

    Returns {"block_ms": {label: [[ms per step of each round] per repeat]}, "block": ..., ...}.
    `clock()`: integer nanoseconds (tests inject a scripted one to check the arithmetic)."""
    if len(steps) < 1 or block < 1 or rounds < 1 or repeats < 1 or warmup < 0:
        raise ValueError(f"need >= 1 step function, block >= 1, rounds >= 1, repeats >= 1, warmup >= 0 "
                         f"(got {len(steps)}, {block}, {rounds}, {repeats}, {warmup})")
    labels = list(steps)
    out: dict[str, list[list[float]]] = {label: [] for label in labels}
    with gc_paused():
        for label in labels:
            for _ in range(warmup):
                steps[label]()
        k = 0
        for _ in range(repeats):
            for label in labels:
                out[label].append([])
            for _ in range(rounds):
                for label in labels[k % len(labels):] + labels[:k % len(labels)]:
                    fn = steps[label]
                    t0 = clock()
                    for _ in range(block):
                        fn()
                    out[label][-1].append((clock() - t0) / block / 1e6)
                k += 1
    return {"block_ms": out, "block": block, "rounds": rounds, "repeats": repeats, "warmup": warmup,
            "how": f"{repeats} repeats of {rounds} rounds; each round runs every step for {block} steps, "
                   "the order rotated each round"}


def paired_ratio(result: dict, base: str, mine: str) -> dict:
    """Speed-up of `mine` over `base` (time of base / time of mine): per repeat, the median over its
    rounds of the same-round ratio; "x" is the median of those, "band" their [min, max]."""
    a, b = result["block_ms"][base], result["block_ms"][mine]
    per_repeat = [statistics.median(p / q for p, q in zip(ra, rb)) for ra, rb in zip(a, b)]
    return {"x": statistics.median(per_repeat), "band": [min(per_repeat), max(per_repeat)],
            "per_repeat": per_repeat}


def median_step_ms(result: dict, label: str) -> float:
    """Median over every round of `label`'s time per step (ms)."""
    return statistics.median(t for rep in result["block_ms"][label] for t in rep)
