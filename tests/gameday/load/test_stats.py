"""The live figures: the folded histograms give exactly HdrHistogram's percentiles, and the
rolling window counts only its own seconds, with a p95 close above the true one."""

from __future__ import annotations

import math

from hdrh.histogram import HdrHistogram
from hypothesis import given, settings
from hypothesis import strategies as st

from gameday.load.stats import KEEP_S, MAX_US, Stats

latencies = st.lists(st.integers(1, MAX_US), min_size=1, max_size=300)


@settings(max_examples=60, deadline=None)
@given(latencies)
def test_percentiles_are_hdrhistograms_own(values: list[int]) -> None:
    stats, direct = Stats(), HdrHistogram(1, MAX_US, 3)
    for us in values:
        t1 = 10.0 + us / 1_000_000
        stats.add("GET /x", "ok", 200, 10.0, t1)
        direct.record_value(max(1, int((t1 - 10.0) * 1_000_000)))  # what the driver measured
    (summary,) = stats.summary().values()
    assert summary["count"] == len(values)
    for q in (50, 95, 99):
        assert summary[f"p{q}_ms"] == direct.get_value_at_percentile(q) / 1000
    assert summary["max_ms"] == direct.get_max_value() / 1000


@settings(max_examples=60, deadline=None)
@given(latencies)
def test_the_window_p95_is_at_most_an_eighth_high(values: list[int]) -> None:
    stats = Stats()
    for us in values:
        stats.add("GET /x", "ok", 200, 3.0, 3.5 + us / 1_000_000 % 0.4)  # all in second 3
        stats.add("GET /y", "ok", 200, 0.0, 0.0)  # second 0: outside a 1 s window at 3.9
    window = stats.window(3.9, 1)
    # the rank-based p95 of the latencies as recorded (µs, truncated like the driver does)
    recorded = sorted(max(1, int((3.5 + us / 1_000_000 % 0.4 - 3.0) * 1_000_000)) for us in values)
    true_p95 = recorded[math.ceil(0.95 * len(values)) - 1] / 1000
    assert window.count == len(values)
    assert true_p95 <= window.p95_ms <= true_p95 * 1.125 + 0.001


def test_the_window_counts_rates_errors_and_forgets() -> None:
    stats = Stats()
    for second in range(100):
        for i in range(10):
            status = 503 if i == 0 else 200
            stats.add("GET /x", "info" if status == 503 else "ok", status, second, second + 0.01)
    window = stats.window(99.5, 5)  # seconds 95..99, the last half elapsed
    assert window.count == 50
    assert window.requests_per_s == 50 / 4.5
    assert window.error_rate == 0.1
    assert 10 <= window.p95_ms <= 11.25
    assert stats.window(99.5, 1000).count == KEEP_S * 10  # the ring keeps one minute
    assert stats.window(500.0, 5).count == 0  # long quiet: nothing is "now"
