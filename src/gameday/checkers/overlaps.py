"""No double booking: no two active (held or confirmed) bookings of one resource overlap.

Ranges are half-open, ``[starts_at, ends_at)``, as the service and its exclusion constraint
treat them: 10:00-11:00 and 11:00-12:00 touch, they do not overlap. "Active" is the status
alone, as in the constraint: a hold past its expiry still blocks its range until the
service marks it expired, so two such holds are a double booking too.

One sort by (resource, start) and a sweep that remembers the booking reaching furthest on
the resource so far: a booking starting before that reach overlaps it. That finds every
booking overlapping an earlier one in O(n log n), where comparing all pairs would take
hours on a large drill. The playbook's own query (confirmed bookings sharing a resource and
a start) is reported as a figure beside it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

from gameday.checkers.result import CheckResult, judge
from gameday.checkers.state import ACTIVE_BOOKING, BookingRow, FinalState

NAME = "no_double_booking"


def no_double_booking(state: FinalState) -> CheckResult:
    """No two held/confirmed bookings of one resource overlap in time."""
    active = sorted(
        (b for b in state.bookings if b.status in ACTIVE_BOOKING),
        key=lambda b: (b.resource_id, b.starts_at, b.ends_at, b.id),
    )
    violations = [_evidence(first, second) for first, second in overlapping(active)]
    confirmed = [b for b in active if b.status == "confirmed"]
    same_start = Counter((b.resource_id, b.starts_at) for b in confirmed)
    figures = {
        "active_bookings": len(active),
        "confirmed_overlaps": sum(1 for _ in overlapping(confirmed)),
        "duplicate_confirmed_slots": sum(n > 1 for n in same_start.values()),
    }
    return judge(
        NAME, violations, missing=state.missing("bookings"), figures=figures,
        failed="{n} active bookings overlap another booking of the same resource",
        passed="no two active bookings of a resource overlap",
    )  # fmt: skip


def overlapping(ordered: Sequence[BookingRow]) -> Iterator[tuple[BookingRow, BookingRow]]:
    """Each booking that overlaps an earlier one, with the earlier one reaching furthest;
    ``ordered`` is sorted by (resource, start)."""
    reach: BookingRow | None = None
    for booking in ordered:
        if reach is None or reach.resource_id != booking.resource_id:
            reach = booking
            continue
        if booking.starts_at < reach.ends_at:
            yield reach, booking
        if booking.ends_at > reach.ends_at:
            reach = booking


def _evidence(first: BookingRow, second: BookingRow) -> dict[str, Any]:
    return {
        "resource_id": first.resource_id,
        "booking_ids": [first.id, second.id],
        "statuses": [first.status, second.status],
        "ranges": [
            [first.starts_at.isoformat(), first.ends_at.isoformat()],
            [second.starts_at.isoformat(), second.ends_at.isoformat()],
        ],
        "hold_expires_at": [
            b.hold_expires_at.isoformat() if b.hold_expires_at and b.status == "held" else None
            for b in (first, second)
        ],
    }
