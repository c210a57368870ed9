"""Request figures from the history: counts, latency percentiles, error rates, a time series.

The report and the gate quote these (the playbook's thresholds are p95 latency and error
rates), so they come from the harness's own history, not from the target's metrics. They
are collected a block of operations at a time with C-level passes (``map``, ``sorted``,
``Counter.update``): a per-operation Python loop would cost more than decoding the file.

Latency is ``t1 - t0`` of every completed operation whatever its outcome: a timeout counts
at the time the client gave up, so a p99 cannot hide the requests that never came back.

The series has one point per second of completion time that saw any operation (memory
grows with the drill's duration, not its volume), with the exact p95 of that second. A
second is closed once the history has moved ``_OPEN_S`` seconds past it; an operation
completing in an already closed second (a history far out of completion order) is counted
in that second's requests and errors but cannot change its p95.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import add, attrgetter, mul, sub
from typing import Any, Protocol

from gameday.checkers.latency import LatencySummary, LogHistogram

_FLUSH = 1 << 16
_SPAN = 1e6
"""Seconds; longer latencies are clamped (no drill waits eleven days for an answer)."""
_SECOND_SPAN = 1e4
"""The same for the series' per-second sort (2.8 hours)."""
_OPEN_S = 2
_T0, _T1 = attrgetter("t0"), attrgetter("t1")
_KIND = attrgetter("endpoint", "status", "type")


class Timed(Protocol):
    """What the statistics read from an operation (``Op`` and the lean line alike)."""

    @property
    def type(self) -> str: ...
    @property
    def endpoint(self) -> str: ...
    @property
    def status(self) -> int: ...
    @property
    def t0(self) -> float: ...
    @property
    def t1(self) -> float: ...


@dataclass(frozen=True, slots=True)
class SeriesPoint:
    t: int
    """The second, counted from the start of the history."""
    requests: int
    errors: int
    """``info`` outcomes: 5xx answers, timeouts, lost connections."""
    p95: float
    """Exact (nearest rank) over the operations that completed in this second."""


@dataclass(frozen=True)
class RequestStats:
    operations: int
    duration_s: float
    counts: dict[tuple[str, int, str], int]
    """Operations per (endpoint, status, outcome type)."""
    latency: dict[str, LatencySummary]
    """Per endpoint."""
    overall: LatencySummary
    series: list[SeriesPoint]
    """One point per second that completed any operation, in time order."""

    @property
    def by_type(self) -> dict[str, int]:
        found: Counter[str] = Counter()
        for (_, _, kind), n in self.counts.items():
            found[kind] += n
        return dict(found)

    @property
    def server_errors(self) -> int:
        return sum(n for (_, status, _), n in self.counts.items() if status >= 500)

    @property
    def server_error_rate(self) -> float:
        return self.server_errors / self.operations if self.operations else 0.0

    @property
    def info_rate(self) -> float:
        return self.by_type.get("info", 0) / self.operations if self.operations else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "operations": self.operations,
            "duration_s": self.duration_s,
            "by_type": self.by_type,
            "server_errors": self.server_errors,
            "server_error_rate": self.server_error_rate,
            "info_rate": self.info_rate,
            "counts": [
                {"endpoint": e, "status": s, "type": t, "count": n}
                for (e, s, t), n in sorted(self.counts.items())
            ],
            "latency": {e: s.to_json() for e, s in sorted(self.latency.items())},
            "overall": self.overall.to_json(),
            # Compact for charts: [second, requests, errors, p95 seconds].
            "series": [[p.t, p.requests, p.errors, p.p95] for p in self.series],
        }


class _Series:
    """Per second: every latency waits in one list as ``second * _SECOND_SPAN + latency``,
    so one sort groups the seconds and orders each one's latencies; the p95 is then read
    at its rank. Seconds still open stay in the list for the next block."""

    def __init__(self) -> None:
        self._open: list[float] = []
        self._points: dict[int, list[float]] = {}
        self._errors: Counter[int] = Counter()

    def feed(self, t1s: list[float], latencies: list[float], info_t1s: list[float]) -> None:
        seconds = list(map(math.floor, t1s))
        if max(latencies) >= _SECOND_SPAN:
            latencies = [min(x, _SECOND_SPAN * 0.999) for x in latencies]
        waiting = self._open
        waiting.extend(map(add, map(mul, seconds, repeat(_SECOND_SPAN)), latencies))
        waiting.sort()
        self._errors.update(map(math.floor, info_t1s))
        cut = bisect_left(waiting, (max(seconds) - _OPEN_S) * _SECOND_SPAN)
        self._close(waiting, cut)
        self._open = waiting[cut:]

    def _close(self, waiting: list[float], end: int) -> None:
        i = 0
        while i < end:
            second = math.floor(waiting[i] / _SECOND_SPAN)
            j = max(i + 1, bisect_left(waiting, (second + 1) * _SECOND_SPAN, i, end))
            point = self._points.get(second)
            if point is None:
                p95 = waiting[i + math.ceil(0.95 * (j - i)) - 1] - second * _SECOND_SPAN
                self._points[second] = [j - i, p95]
            else:  # stragglers of a closed second
                point[0] += j - i
            i = j

    def finish(self) -> list[SeriesPoint]:
        self._close(self._open, len(self._open))
        self._open = []
        return [
            SeriesPoint(second, int(n), self._errors.get(second, 0), p95)
            for second, (n, p95) in sorted(self._points.items())
        ]


class _Offsets(dict[tuple[str, int, str], float]):
    """Gives each (endpoint, status, type) on first sight its offset, ``n * _SPAN`` for the
    n-th kind seen; looked up in C by ``map``."""

    def __missing__(self, key: tuple[str, int, str]) -> float:
        offset = self[key] = len(self) * _SPAN
        return offset


class StatsCollector:
    """Latencies wait in one list as ``kind * _SPAN + latency`` (``kind`` numbering the
    (endpoint, status, type) seen): one C sort then separates the kinds and orders each
    one's latencies, which is what ``LogHistogram.add_sorted`` wants, and the counts per
    kind fall out of the same sort. A latency outside ``[0, _SPAN)`` is clamped first."""

    def __init__(self) -> None:
        self.operations = 0
        self._kinds = _Offsets()
        self._pending: list[float] = []
        self._latency: defaultdict[int, LogHistogram] = defaultdict(LogHistogram)
        self._series = _Series()
        self._first, self._last = math.inf, -math.inf

    def feed(self, ops: Sequence[Timed]) -> None:
        if not ops:
            return
        self.operations += len(ops)
        t0s, t1s = list(map(_T0, ops)), list(map(_T1, ops))
        latencies = list(map(sub, t1s, t0s))
        if min(latencies) < 0 or max(latencies) >= _SPAN:
            latencies = [min(max(x, 0.0), _SPAN * 0.999) for x in latencies]
        first, last = min(t0s), max(t1s)
        self._first, self._last = min(first, self._first), max(last, self._last)
        kinds = map(self._kinds.__getitem__, map(_KIND, ops))
        self._pending.extend(map(add, latencies, kinds))
        if len(self._pending) >= _FLUSH:
            self._flush()
        self._series.feed(t1s, latencies, [o.t1 for o in ops if o.type == "info"])

    def _flush(self) -> None:
        pending, i, end = sorted(self._pending), 0, len(self._pending)
        self._pending = []
        while i < end:
            kind = math.floor(pending[i] / _SPAN)
            j = max(i + 1, bisect_left(pending, (kind + 1) * _SPAN, i))
            self._latency[kind].add_sorted(pending, i, j, kind * _SPAN)
            i = j

    def finish(self) -> RequestStats:
        self._flush()
        names = {round(offset / _SPAN): kind for kind, offset in self._kinds.items()}
        counts = {names[n]: h.count for n, h in self._latency.items()}
        by_endpoint: defaultdict[str, LogHistogram] = defaultdict(LogHistogram)
        overall = LogHistogram()
        for number, histogram in self._latency.items():
            by_endpoint[names[number][0]].merge(histogram)
            overall.merge(histogram)
        duration = self._last - self._first if self.operations else 0.0
        return RequestStats(
            self.operations, duration, counts,
            {e: h.summary() for e, h in by_endpoint.items()}, overall.summary(),
            self._series.finish(),
        )  # fmt: skip
