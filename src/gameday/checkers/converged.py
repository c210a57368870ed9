"""Convergence: once the system has been quiet, every booking/payment pair is in a state
a customer would accept.

- paid but not booked: a payment ``succeeded`` (not refunded) whose booking is not
  ``confirmed``. The service marks such a payment ``needs_refund`` and refunds it; after
  quiet that refund should have happened, so a pending one is still a violation (its
  reason says so — a refund the provider keeps refusing is a different fix than none);
- confirmed but not paid: a ``confirmed`` booking with no ``succeeded`` payment;
- stuck: a payment still ``processing`` or ``requires_action`` for longer than
  ``quiet_s`` before the state was read (a payment with no ``updated_at`` counts as stuck:
  after quiet, an open payment of unknown age is not one to wave through).

This is about our tables only; whether they agree with the provider is
``no_duplicate_charge``'s question.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from gameday.checkers.result import CheckResult, judge
from gameday.checkers.state import BookingRow, FinalState, PaymentRow

NAME = "convergence"
STUCK = frozenset({"processing", "requires_action"})
QUIET_S = 60.0


def convergence(state: FinalState, quiet_s: float = QUIET_S) -> CheckResult:
    """No paid-but-unbooked, no confirmed-but-unpaid, no payment stuck open after quiet."""
    bookings_missing, payments_missing = state.missing("bookings"), state.missing("payments")
    bookings = {b.id: b for b in state.bookings}
    violations = _paid_not_booked(state.payments, bookings, complete=not bookings_missing)
    if not payments_missing:  # "no succeeded payment" needs every payment
        violations += _confirmed_not_paid(state.bookings, state.payments)
    cutoff = state.read_at - timedelta(seconds=quiet_s)
    violations += [
        _payment("stuck", p, bookings.get(p.booking_id), since=_iso(p.updated_at))
        for p in state.payments
        if p.status in STUCK and (p.updated_at is None or p.updated_at <= cutoff)
    ]
    figures: dict[str, float | int] = {"quiet_s": quiet_s}
    for violation in violations:
        key = violation["kind"]
        figures[key] = int(figures.get(key, 0)) + 1
    return judge(
        NAME, violations, missing=bookings_missing + payments_missing, figures=figures,
        failed="{n} bookings or payments did not converge after quiet",
        passed="every booking and payment reached a consistent final state",
    )  # fmt: skip


def _paid_not_booked(
    payments: list[PaymentRow], bookings: dict[int, BookingRow], *, complete: bool
) -> list[dict[str, Any]]:
    found = []
    for payment in payments:
        if payment.status != "succeeded":
            continue
        booking = bookings.get(payment.booking_id)
        if booking is None and not complete:
            continue  # its booking may be among the rows not read
        if booking is None or booking.status != "confirmed":
            reason = "refund_pending" if payment.needs_refund else "not_confirmed"
            reason = "booking_missing" if booking is None else reason
            found.append(_payment("paid_not_booked", payment, booking, reason=reason))
    return found


def _confirmed_not_paid(
    bookings: list[BookingRow], payments: list[PaymentRow]
) -> list[dict[str, Any]]:
    statuses: defaultdict[int, list[str]] = defaultdict(list)
    for payment in payments:
        statuses[payment.booking_id].append(payment.status)
    return [
        {
            "kind": "confirmed_not_paid",
            "booking_id": b.id,
            "booking_status": b.status,
            "payment_statuses": statuses.get(b.id, []),
        }
        for b in bookings
        if b.status == "confirmed" and "succeeded" not in statuses.get(b.id, [])
    ]


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


def _payment(kind: str, p: PaymentRow, booking: BookingRow | None, **more: Any) -> dict[str, Any]:
    return {
        "kind": kind,
        "booking_id": p.booking_id,
        "payment_id": p.id,
        "payment_status": p.status,
        "booking_status": booking.status if booking else None,
        "intent_id": p.provider_intent_id,
        **more,
    }
