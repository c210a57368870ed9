"""No lost acknowledged write: every 2xx hold, succeeded payment and event is still there."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from gameday.checkers import (
    BookingRow,
    EventRow,
    FinalState,
    PaymentRow,
    Verdict,
    check_history,
    no_lost_ack,
)
from gameday.history import Op, OpType


def op(index: int, f: str, type: OpType, status: int, value: dict[str, Any] | None) -> Op:
    return Op(
        index=index,
        type=type,
        f=f,
        process="c1",
        endpoint=f"POST /{f}",
        t0=index,
        t1=index + 0.01,
        status=status,
        value=value,
    )


def hold(index: int, booking_id: int | None, type: OpType = "ok", status: int = 201) -> Op:
    value = {
        "resource_id": 1,
        "starts_at": "2026-06-01T10:00:00+00:00",
        "ends_at": "2026-06-01T11:00:00+00:00",
    }
    if booking_id is not None:
        value |= {"booking_id": booking_id, "status": "held"}
    return op(index, "hold", type, status, value)


def pay(
    index: int, booking_id: int, payment_id: int, status: str = "succeeded", http: int = 200
) -> Op:
    value = {"booking_id": booking_id, "digest": "d", "payment_id": payment_id, "status": status}
    return op(index, "pay", "ok", http, value)


def rows(*ids: int) -> list[BookingRow]:
    at = datetime(2026, 6, 1, tzinfo=UTC)
    return [BookingRow(i, 1, 1, at, at, "held") for i in ids]


def test_every_acknowledged_write_present_passes() -> None:
    ops = [
        hold(0, 1),
        hold(1, 2),
        pay(2, 1, 10),
        pay(3, 2, 11, "processing", 202),
        op(4, "webhook", "ok", 200, {"event_id": "evt_1", "event_type": "x"}),
    ]
    state = FinalState(
        bookings=rows(1, 2),
        payments=[PaymentRow(10, 1, "refunded", "pi", 1), PaymentRow(11, 2, "canceled", "pi", 1)],
        events=[EventRow("evt_1", "x", "processed")],
    )
    result = no_lost_ack(ops, state)
    assert result.verdict is Verdict.PASS, result.evidence
    assert result.figures == {
        "acked_holds": 2,
        "acked_payments": 1,
        "acked_events": 1,
        "violations": 0,
    }


def test_a_missing_booking_is_a_lost_hold() -> None:
    result = no_lost_ack([hold(0, 1), hold(1, 2)], FinalState(bookings=rows(1)))
    assert result.verdict is Verdict.FAIL
    assert result.evidence == [{"kind": "hold_lost", "booking_id": 2, "op_index": 1}]


def test_info_and_refused_holds_are_not_acknowledgements() -> None:
    ops = [hold(0, None, "info", 0), hold(1, None, "info", 503), hold(2, None, "fail", 409)]
    result = no_lost_ack(ops, FinalState())
    assert result.verdict is Verdict.PASS
    assert result.figures["acked_holds"] == 0


def test_a_succeeded_payment_found_unpaid_or_missing_is_lost() -> None:
    ops = [pay(0, 1, 10), pay(1, 2, 11), pay(2, 2, 11)]
    state = FinalState(
        bookings=rows(1, 2), payments=[PaymentRow(10, 1, "requires_payment_method", "pi", 1)]
    )
    result = no_lost_ack(ops, state)
    assert [(e["kind"], e["payment_id"], e["op_index"]) for e in result.evidence] == [
        ("payment_undone", 10, 0),
        ("payment_lost", 11, 1),
    ]


def test_an_acknowledged_event_not_recorded_is_lost() -> None:
    ops = [
        op(0, "webhook", "ok", 200, {"event_id": "evt_1", "event_type": "x"}),
        op(1, "webhook", "fail", 400, {"event_id": "evt_forged", "event_type": "x"}),
    ]
    result = no_lost_ack(ops, FinalState())
    assert result.evidence == [{"kind": "event_lost", "event_id": "evt_1", "op_index": 0}]


def test_unreadable_tables_are_unknown_but_an_undone_payment_still_fails() -> None:
    unknown = no_lost_ack([hold(0, 1)], FinalState(errors=["database: OSError: down"]))
    assert unknown.verdict is Verdict.UNKNOWN
    undone = no_lost_ack(
        check_history([pay(0, 1, 10)]),
        FinalState(
            payments=[PaymentRow(10, 1, "processing", "pi", 1)],
            errors=["payments: more than 1 rows"],
        ),
    )
    assert undone.verdict is Verdict.FAIL


def test_a_payment_named_only_by_its_booking_is_found_through_the_booking() -> None:
    def by_booking(index: int, booking_id: int) -> Op:
        value = {"booking_id": booking_id, "digest": "d", "status": "succeeded"}
        return op(index, "pay", "ok", 200, value)

    state = FinalState(
        bookings=rows(1, 2, 3),
        payments=[
            PaymentRow(10, 1, "failed", "pi", 1),
            PaymentRow(11, 1, "succeeded", "pi", 1),
            PaymentRow(12, 2, "failed", "pi", 1),
        ],
    )
    result = no_lost_ack([by_booking(0, 1), by_booking(1, 2), by_booking(2, 3)], state)
    assert [(e["kind"], e["booking_id"], e["payment_id"]) for e in result.evidence] == [
        ("payment_undone", 2, None),
        ("payment_lost", 3, None),
    ]
    cut = dataclasses.replace(state, errors=["payments: more than 3 rows"])
    assert [e["booking_id"] for e in no_lost_ack([by_booking(2, 3)], cut).evidence] == []
