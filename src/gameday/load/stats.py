"""Live figures of the load: exact latency histograms per endpoint for the report, and a
rolling window of the last minute for the dashboard.

Two structures because they answer different questions at different costs. The report wants
exact percentiles over the whole run per endpoint: an HdrHistogram (1 µs to 60 s, three
significant digits, constant memory whatever the count). Its Python ``record_value`` costs
about a microsecond, a fifth of the driver's whole bookkeeping per request, so the hot path
only counts each latency rounded exactly as the histogram would round it (to its lowest
equivalent value) and the counts are folded into the histogram when it is read, or when
there are many of them; the percentiles are the same as if each value had been recorded.

The dashboard wants "now": per-second buckets in a ring of 60, each holding its count, its
errors and a coarse log histogram (8 bins per doubling, so a p95 read from it is at most
12.5 % high); reading a window merges at most 60 small arrays, and memory stays fixed however
long the drill runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from hdrh.histogram import HdrHistogram

from gameday.history.model import OpType

MAX_US = 60_000_000
_EXACT_BITS = 11  # three significant digits: HdrHistogram's 2048 sub-buckets per power of two
_FOLD_AT = 4096
KEEP_S = 60
_TOP_BITS = 27  # 2**27 µs is over two minutes: above MAX_US
_BINS = (_TOP_BITS - 2) * 8


@dataclass(frozen=True, slots=True)
class Window:
    """The last ``seconds`` as the dashboard shows them; zeros when nothing completed."""

    seconds: float
    count: int
    requests_per_s: float
    error_rate: float
    """Share of answers that were 5xx or no answer at all (``info``)."""
    p95_ms: float


def _bin_top_us(index: int) -> int:
    """The largest latency of a window bin. ``Stats.add`` bins a latency of ``us`` µs with
    ``b = us.bit_length()`` as ``us`` when ``b <= 3``, else ``(b - 3) * 8 + (us >> (b - 4) & 7)``:
    exact under 8 µs, then 8 bins per power of two (its top four bits)."""
    if index < 8:
        return index
    bits, sub = index // 8 + 3, index % 8
    return ((9 + sub) << (bits - 4)) - 1


class _Second:
    __slots__ = ("bins", "count", "errors", "second")

    def __init__(self, second: int) -> None:
        self.second = second
        self.count = 0
        self.errors = 0
        self.bins = [0] * _BINS


class _Endpoint:
    __slots__ = ("_histogram", "pending", "statuses")

    def __init__(self) -> None:
        self._histogram = HdrHistogram(1, MAX_US, 3)
        self.pending: dict[int, int] = {}
        """Latencies not yet in the histogram: rounded value -> count."""
        self.statuses: dict[int, int] = {}

    @property
    def histogram(self) -> HdrHistogram:
        pending = self.pending
        for value, count in pending.items():
            self._histogram.record_value(value, count)
        pending.clear()
        return self._histogram


class Stats:
    """Fed once per completed operation by the driver; read by the dashboard and the report."""

    def __init__(self) -> None:
        self._endpoints: dict[str, _Endpoint] = {}
        self._ring: list[_Second | None] = [None] * KEEP_S

    def add(self, endpoint: str, kind: OpType, status: int, t0: float, t1: float) -> None:
        us = int((t1 - t0) * 1_000_000)
        if us < 1:
            us = 1
        elif us > MAX_US:
            us = MAX_US
        stats = self._endpoints.get(endpoint)
        if stats is None:
            stats = self._endpoints[endpoint] = _Endpoint()
        bits = us.bit_length()
        rounded = us if bits <= _EXACT_BITS else us >> (bits - _EXACT_BITS) << (bits - _EXACT_BITS)
        pending = stats.pending
        pending[rounded] = pending.get(rounded, 0) + 1
        if len(pending) >= _FOLD_AT:
            stats.histogram  # noqa: B018 - reading it folds the pending counts in
        stats.statuses[status] = stats.statuses.get(status, 0) + 1
        second = int(t1)
        slot = self._ring[second % KEEP_S]
        if slot is None or slot.second != second:
            slot = self._ring[second % KEEP_S] = _Second(second)
        slot.count += 1
        if kind == "info" or status >= 500:
            slot.errors += 1
        slot.bins[us if bits <= 3 else (bits - 3) * 8 + ((us >> (bits - 4)) & 7)] += 1

    def window(self, now: float, seconds: float = 5.0) -> Window:
        """The seconds ``(now - seconds, now]`` rounded out to whole buckets (the current one
        partly elapsed), so the rate divides by the time those buckets really covered."""
        whole = max(1, min(math.ceil(seconds), KEEP_S))
        current = int(now)
        first = current - whole + 1
        count = errors = 0
        bins = [0] * _BINS
        for slot in self._ring:
            if slot is not None and first <= slot.second <= current:
                count += slot.count
                errors += slot.errors
                bins = [a + b for a, b in zip(bins, slot.bins, strict=True)]
        span = now - max(first, 0)
        if count == 0 or span <= 0:
            return Window(seconds, 0, 0.0, 0.0, 0.0)
        return Window(seconds, count, count / span, errors / count, _percentile(bins, count, 0.95))

    def summary(self) -> dict[str, Any]:
        """Per endpoint: count, statuses (``"0"`` is no answer), p50/p95/p99/max in ms."""
        report: dict[str, Any] = {}
        for endpoint, stats in sorted(self._endpoints.items()):
            histogram = stats.histogram
            report[endpoint] = {
                "count": histogram.get_total_count(),
                "status": {str(code): n for code, n in sorted(stats.statuses.items())},
                **{f"p{q}_ms": histogram.get_value_at_percentile(q) / 1000 for q in (50, 95, 99)},
                "max_ms": histogram.get_max_value() / 1000,
            }
        return report


def _percentile(bins: list[int], count: int, q: float) -> float:
    rank = math.ceil(q * count)
    seen = 0
    for index, n in enumerate(bins):
        seen += n
        if seen >= rank:
            return _bin_top_us(index) / 1000
    return _bin_top_us(len(bins) - 1) / 1000
