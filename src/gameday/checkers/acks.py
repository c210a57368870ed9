"""No lost acknowledged write: what the target said it did (a 2xx) is there afterwards.

- every acknowledged hold's booking exists (whatever its status now: an expired hold was
  not lost, a missing row was);
- every payment acknowledged as ``succeeded`` is ``succeeded`` or ``refunded`` in our
  tables — anything else means the recorded charge was lost or rolled back;
- every acknowledged webhook event is recorded (the service commits the event row before
  it answers).

Only ``ok`` outcomes count: an ``info`` hold may or may not exist and proves nothing
either way. Saying a row is *missing* needs the whole table, so a table that could not be
read in full makes that part UNKNOWN; so do unreadable history lines, since one of them
may have been an acknowledgement.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from gameday.checkers.facts import HistoryFacts, check_history
from gameday.checkers.result import CheckResult, judge
from gameday.checkers.state import PAID, FinalState, PaymentRow
from gameday.history import Op

NAME = "no_lost_ack"


def no_lost_ack(history: HistoryFacts | Iterable[Op], state: FinalState) -> CheckResult:
    """Every acknowledged hold, succeeded payment and webhook event survived."""
    facts = history if isinstance(history, HistoryFacts) else check_history(history, stats=False)
    # booking id -> first acknowledging op: built backwards, so the first one is kept.
    holds = dict(zip(reversed(facts.holds[0::2]), reversed(facts.holds[1::2]), strict=True))
    paid = _first_per_payment(facts)
    missing = facts.missing()
    violations: list[dict[str, Any]] = []
    if state.missing("bookings"):
        missing += state.missing("bookings")
    else:
        exists = {b.id for b in state.bookings}
        violations += [
            {"kind": "hold_lost", "booking_id": b, "op_index": i}
            for b, i in holds.items()
            if b not in exists
        ]
    missing += state.missing("payments")
    violations += _payments(paid, state)
    if state.missing("webhook_events"):
        missing += state.missing("webhook_events")
    else:
        recorded = {e.id for e in state.events}
        violations += [
            {"kind": "event_lost", "event_id": e, "op_index": i}
            for e, i in facts.events.items()
            if e not in recorded
        ]
    figures = {"acked_holds": len(holds), "acked_payments": len(paid),
               "acked_events": len(facts.events)}  # fmt: skip
    return judge(
        NAME, sorted(violations, key=lambda v: v["op_index"]), missing=missing,
        figures=figures, failed="{n} acknowledged writes are missing or undone",
        passed="every acknowledged hold, payment and webhook event is in the final state",
    )  # fmt: skip


def _first_per_payment(facts: HistoryFacts) -> dict[tuple[int, int], int]:
    """(payment id, booking id) → the first op that acknowledged it as succeeded (built
    backwards in C, so the first one is kept: replayed answers repeat the same payment)."""
    flat = facts.paid
    keys = zip(reversed(flat[0::3]), reversed(flat[1::3]), strict=True)
    return dict(zip(keys, reversed(flat[2::3]), strict=True))


def _payments(paid: dict[tuple[int, int], int], state: FinalState) -> list[dict[str, Any]]:
    """A payment found in another status is lost whatever else is unreadable; a payment
    not found at all is only lost if every payment was read."""
    paid_ids = {p.id for p in state.payments if p.status in PAID}
    paid_bookings = {p.booking_id for p in state.payments if p.status in PAID}
    suspects = [
        (payment_id, booking_id, index)
        for (payment_id, booking_id), index in paid.items()
        if (payment_id not in paid_ids if payment_id >= 0 else booking_id not in paid_bookings)
    ]
    if not suspects:  # the usual case: every acknowledged payment is found paid
        return []
    complete = not state.missing("payments")
    by_id = {p.id: p for p in state.payments}
    by_booking: dict[int, list[PaymentRow]] = {}
    for payment in state.payments:
        by_booking.setdefault(payment.booking_id, []).append(payment)
    found = []
    for payment_id, booking_id, index in suspects:
        if payment_id >= 0:
            rows = [by_id[payment_id]] if payment_id in by_id else []
        else:  # the answer named only the booking
            rows = by_booking.get(booking_id, [])
        if any(r.status in PAID for r in rows) or (not rows and not complete):
            continue
        found.append({
            "kind": "payment_lost" if not rows else "payment_undone", "op_index": index,
            "payment_id": payment_id if payment_id >= 0 else None, "booking_id": booking_id,
            "statuses": [r.status for r in rows],
        })  # fmt: skip
    return found
