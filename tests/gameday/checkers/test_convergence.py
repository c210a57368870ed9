"""Convergence: no paid-but-unbooked, no confirmed-but-unpaid, nothing stuck after quiet."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gameday.checkers import BookingRow, FinalState, PaymentRow, Verdict, convergence

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def booking(id: int, status: str) -> BookingRow:
    return BookingRow(id, 1, 1, NOW + timedelta(days=id), NOW + timedelta(days=id, hours=1), status)


def payment(
    id: int, booking: int, status: str, needs_refund: bool = False, age_s: float = 600
) -> PaymentRow:
    return PaymentRow(
        id, booking, status, f"pi_{id}", 5000, needs_refund, NOW - timedelta(seconds=age_s)
    )


def state(bookings: list[BookingRow], payments: list[PaymentRow], *errors: str) -> FinalState:
    return FinalState(bookings=bookings, payments=payments, read_at=NOW, errors=list(errors))


def test_consistent_pairs_pass() -> None:
    result = convergence(
        state(
            [
                booking(1, "confirmed"),
                booking(2, "canceled"),
                booking(3, "held"),
                booking(4, "expired"),
            ],
            [
                payment(1, 1, "succeeded"),
                payment(2, 2, "refunded"),
                payment(3, 3, "requires_payment_method"),
                payment(4, 4, "processing", age_s=5),  # still within quiet
            ],
        )
    )
    assert result.verdict is Verdict.PASS, result.evidence


def test_paid_but_unbooked_fails_with_the_reason() -> None:
    result = convergence(
        state(
            [booking(1, "expired"), booking(2, "canceled")],
            [payment(1, 1, "succeeded"), payment(2, 2, "succeeded", needs_refund=True)],
        )
    )
    assert result.verdict is Verdict.FAIL
    assert [(e["kind"], e["booking_id"], e["reason"]) for e in result.evidence] == [
        ("paid_not_booked", 1, "not_confirmed"),
        ("paid_not_booked", 2, "refund_pending"),
    ]
    assert result.figures["paid_not_booked"] == 2


def test_confirmed_but_unpaid_fails() -> None:
    result = convergence(state([booking(1, "confirmed")], [payment(1, 1, "refunded")]))
    assert result.evidence == [
        {
            "kind": "confirmed_not_paid",
            "booking_id": 1,
            "booking_status": "confirmed",
            "payment_statuses": ["refunded"],
        }
    ]


def test_a_payment_stuck_open_past_quiet_fails() -> None:
    result = convergence(
        state([booking(1, "held")], [payment(1, 1, "requires_action", age_s=120)]), quiet_s=60
    )
    assert result.verdict is Verdict.FAIL
    assert result.evidence[0]["kind"] == "stuck"
    assert result.evidence[0]["since"] == (NOW - timedelta(seconds=120)).isoformat()
    assert (
        convergence(
            state([booking(1, "held")], [payment(1, 1, "requires_action", age_s=120)]), quiet_s=300
        ).verdict
        is Verdict.PASS
    )


def test_unreadable_payments_are_unknown_and_never_make_confirmed_look_unpaid() -> None:
    result = convergence(state([booking(1, "confirmed")], [], "payments: OperationalError: gone"))
    assert result.verdict is Verdict.UNKNOWN


def test_a_booking_beyond_the_rows_read_is_not_judged() -> None:
    result = convergence(
        state(
            [],
            [payment(1, 99, "succeeded")],
            "bookings: more than 0 rows; only the first 0 were read",
        )
    )
    assert result.verdict is Verdict.UNKNOWN
