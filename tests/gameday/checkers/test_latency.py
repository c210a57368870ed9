"""Latency percentiles from the log histogram are within 1 % of the exact ones."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gameday.checkers import LogHistogram


@given(
    st.lists(st.floats(1e-5, 100.0), min_size=1, max_size=300),
    st.sampled_from([0.5, 0.95, 0.99, 1.0]),
)
def test_percentiles_are_within_one_percent(values: list[float], q: float) -> None:
    histogram = LogHistogram()
    half = len(values) // 2
    histogram.add_sorted(sorted(values[:half]))
    for value in values[half:]:
        histogram.add(value)
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(values) - 1e-9))  # nearest rank, float noise aside
    expected = ordered[rank - 1]
    got = histogram.percentile(q)
    assert got is not None
    assert abs(got - expected) <= 0.01 * expected


def test_an_empty_histogram_has_no_percentiles() -> None:
    assert LogHistogram().percentile(0.5) is None
    assert LogHistogram().summary().count == 0


def test_offsets_let_many_histograms_share_one_sorted_list() -> None:
    histogram = LogHistogram()
    histogram.add_sorted([1000.010, 1000.020, 1000.030, 2000.5], 0, 3, offset=1000.0)
    assert histogram.count == 3
    assert (histogram.low, histogram.high) == pytest.approx((0.010, 0.030))
    assert histogram.percentile(1.0) == pytest.approx(0.030, rel=0.01)
