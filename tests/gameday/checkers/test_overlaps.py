"""No double booking: active bookings of one resource never overlap ([start, end))."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from itertools import combinations

from hypothesis import given
from hypothesis import strategies as st

from gameday.checkers import BookingRow, FinalState, Verdict, no_double_booking
from gameday.checkers.overlaps import overlapping

DAY = datetime(2026, 6, 1, tzinfo=UTC)


def booking(
    id: int, start_h: float, end_h: float, status: str = "held", resource: int = 1
) -> BookingRow:
    starts, ends = DAY + timedelta(hours=start_h), DAY + timedelta(hours=end_h)
    return BookingRow(id, resource, 100 + id, starts, ends, status, DAY + timedelta(minutes=15))


def judge(*bookings: BookingRow) -> Verdict:
    return no_double_booking(FinalState(bookings=list(bookings))).verdict


def test_overlapping_active_bookings_fail_with_both_ids() -> None:
    result = no_double_booking(
        FinalState(bookings=[booking(1, 10, 12, "confirmed"), booking(2, 11, 13)])
    )
    assert result.verdict is Verdict.FAIL
    assert result.evidence == [
        {
            "resource_id": 1,
            "booking_ids": [1, 2],
            "statuses": ["confirmed", "held"],
            "ranges": [
                ["2026-06-01T10:00:00+00:00", "2026-06-01T12:00:00+00:00"],
                ["2026-06-01T11:00:00+00:00", "2026-06-01T13:00:00+00:00"],
            ],
            "hold_expires_at": [None, "2026-06-01T00:15:00+00:00"],
        }
    ]


def test_touching_ranges_do_not_overlap() -> None:
    assert judge(booking(1, 10, 11, "confirmed"), booking(2, 11, 12, "confirmed")) is Verdict.PASS


def test_inactive_bookings_and_other_resources_are_ignored() -> None:
    assert (
        judge(
            booking(1, 10, 12, "confirmed"),
            booking(2, 10, 12, "expired"),
            booking(3, 10, 12, "canceled"),
            booking(4, 10, 12, "confirmed", resource=2),
        )
        is Verdict.PASS
    )


def test_a_long_booking_overlapping_a_later_one_is_found_past_a_short_one() -> None:
    result = no_double_booking(
        FinalState(bookings=[booking(1, 8, 18), booking(2, 9, 10), booking(3, 12, 13)])
    )
    assert [e["booking_ids"] for e in result.evidence] == [[1, 2], [1, 3]]


def test_duplicate_confirmed_bookings_are_counted_separately() -> None:
    result = no_double_booking(
        FinalState(
            bookings=[
                booking(1, 10, 11, "confirmed"),
                booking(2, 10, 11, "confirmed"),
                booking(3, 10, 11, "held", resource=2),
                booking(4, 10.5, 11.5, "held", resource=2),
            ]
        )
    )
    assert result.verdict is Verdict.FAIL
    assert result.figures["duplicate_confirmed_slots"] == 1
    assert result.figures["confirmed_overlaps"] == 1
    assert result.figures["violations"] == 2


def test_unreadable_bookings_are_unknown() -> None:
    state = FinalState(errors=["bookings: ProgrammingError: no such table"])
    assert no_double_booking(state).verdict is Verdict.UNKNOWN


def test_a_large_state_is_checked_in_n_log_n() -> None:
    many = [
        booking(i, (i % 1000) * 2, (i % 1000) * 2 + 1, resource=i // 1000) for i in range(200_000)
    ]
    started = time.perf_counter()
    result = no_double_booking(FinalState(bookings=many))
    assert result.verdict is Verdict.PASS
    assert time.perf_counter() - started < 5.0  # all pairs would be 2e10 comparisons


spans = st.lists(
    st.tuples(
        st.integers(1, 3),
        st.integers(0, 20),
        st.integers(1, 6),
        st.sampled_from(["held", "confirmed", "expired"]),
    ),
    max_size=25,
)


@given(spans)
def test_the_sweep_agrees_with_comparing_every_pair(rows: list[tuple[int, int, int, str]]) -> None:
    bookings = [
        booking(i, s, s + n, status, resource=r) for i, (r, s, n, status) in enumerate(rows)
    ]
    active = [b for b in bookings if b.status != "expired"]
    clashing = {
        frozenset((a.id, b.id))
        for a, b in combinations(active, 2)
        if a.resource_id == b.resource_id and a.starts_at < b.ends_at and b.starts_at < a.ends_at
    }
    result = no_double_booking(FinalState(bookings=bookings))
    assert (result.verdict is Verdict.FAIL) == bool(clashing)
    reported = {frozenset(e["booking_ids"]) for e in result.evidence}
    assert reported <= clashing
    # Every booking overlapping an earlier one (in start order) is reported once.
    ordered = sorted(active, key=lambda b: (b.resource_id, b.starts_at, b.ends_at, b.id))
    later = {
        b.id
        for i, b in enumerate(ordered)
        if any(frozenset((a.id, b.id)) in clashing for a in ordered[:i])
    }
    assert [pair[1].id for pair in overlapping(ordered)] == [b.id for b in ordered if b.id in later]
