"""Latency percentiles in constant memory: a log-bucketed histogram, filled from sorted runs.

Why not ``hdrh``: recording one value is a Python call into the extension, about 1 µs, which
alone would eat the budget of a million-operation check. Here bucket ``k`` holds latencies
in ``[LOWER[k], LOWER[k+1])``, bounds growing by e^(1/64) ≈ 1.6 % from 1 µs to 11 days, so
the bucket's geometric middle is within 0.8 % of any latency in it. Values are added as
sorted runs: two ``bisect`` calls per bucket the run touches instead of a logarithm per
value, so filling the histogram costs about what sorting the latencies (in C) costs.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

_PER_E = 64
_FLOOR_S, _CEILING_S = 1e-6, 1e6
_FIRST = math.floor(math.log(_FLOOR_S) * _PER_E)
LOWER = [
    math.exp((_FIRST + k) / _PER_E)
    for k in range(math.ceil(math.log(_CEILING_S) * _PER_E) - _FIRST + 2)
]
"""Lower bound of each bucket; values below the first or past the last are clamped."""
_LAST = len(LOWER) - 2


def _bucket(value: float) -> int:
    return min(max(bisect_right(LOWER, value) - 1, 0), _LAST)


@dataclass(frozen=True, slots=True)
class LatencySummary:
    count: int
    p50: float
    p95: float
    p99: float
    max: float
    """Seconds; percentiles within 1 % (nearest rank), ``max`` exact."""

    def to_json(self) -> dict[str, float | int]:
        return {"count": self.count, "p50": self.p50, "p95": self.p95, "p99": self.p99,
                "max": self.max}  # fmt: skip


class LogHistogram:
    __slots__ = ("count", "counts", "high", "low")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.count = 0
        self.low = math.inf
        self.high = -math.inf

    def add(self, value: float) -> None:
        bucket = _bucket(value)
        self.counts[bucket] = self.counts.get(bucket, 0) + 1
        self.count += 1
        self.low, self.high = min(self.low, value), max(self.high, value)

    def add_sorted(
        self, values: Sequence[float], start: int = 0, end: int | None = None,
        offset: float = 0.0,
    ) -> None:  # fmt: skip
        """Add ``values[start:end] - offset``; ``values`` must be sorted ascending there.
        (The offset lets a caller sort many histograms' values in one list.)"""
        end = len(values) if end is None else end
        if start >= end:
            return
        counts, i = self.counts, start
        while i < end:
            bucket = _bucket(values[i] - offset)
            # ``max``: progress even if rounding put values[i] at or past its own edge.
            j = max(i + 1, bisect_left(values, LOWER[bucket + 1] + offset, i, end))
            counts[bucket] = counts.get(bucket, 0) + (j - i)
            i = j
        self.count += end - start
        self.low = min(self.low, values[start] - offset)
        self.high = max(self.high, values[end - 1] - offset)

    def merge(self, other: LogHistogram) -> None:
        for bucket, n in other.counts.items():
            self.counts[bucket] = self.counts.get(bucket, 0) + n
        self.count += other.count
        self.low, self.high = min(self.low, other.low), max(self.high, other.high)

    def percentile(self, q: float) -> float | None:
        """Nearest rank: the smallest latency with at least ``q`` of them at or below it."""
        if not self.count:
            return None
        rank, seen = max(1, math.ceil(q * self.count - 1e-9)), 0
        for bucket in sorted(self.counts):
            seen += self.counts[bucket]
            if seen >= rank:
                middle = math.sqrt(LOWER[bucket] * LOWER[bucket + 1])
                return min(max(middle, self.low), self.high)
        return self.high

    def summary(self) -> LatencySummary:
        def at(q: float) -> float:
            found = self.percentile(q)
            return 0.0 if found is None else found

        high = self.high if self.count else 0.0
        return LatencySummary(self.count, at(0.50), at(0.95), at(0.99), high)
