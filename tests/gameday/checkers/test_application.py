"""Single application: an event id applied once; confirmation queued and sent once."""

from __future__ import annotations

from gameday.checkers import (
    EventRow,
    FinalState,
    OutboxRow,
    TransitionRow,
    Verdict,
    single_application,
)


def transition(payment: int, source: str, to: str = "succeeded") -> TransitionRow:
    return TransitionRow(payment, "requires_payment_method", to, source)


def test_replayed_events_applied_once_pass() -> None:
    state = FinalState(
        transitions=[
            transition(1, "confirm:pi_1"),
            transition(2, "event:evt_2"),
            transition(2, "auto-refund", "refunded"),
        ],
        events=[EventRow("evt_2", "payment_intent.succeeded", "processed", 1, 20)],
        outbox=[OutboxRow(1, "booking_confirmed", 2, "booking-confirmed-2", "sent")],
    )
    result = single_application(state, {2: 1})
    assert result.verdict is Verdict.PASS
    assert result.figures["events_delivered_more_than_once"] == 1
    assert result.figures["emails"] == 1


def test_an_event_applied_twice_fails_naming_it() -> None:
    state = FinalState(
        transitions=[
            transition(1, "event:evt_1", "processing"),
            transition(1, "event:evt_1", "processing"),
        ]
    )
    result = single_application(state)
    assert result.verdict is Verdict.FAIL
    assert result.evidence == [
        {
            "kind": "event_applied_twice",
            "event_id": "evt_1",
            "applications": 2,
            "payment_ids": [1],
            "changes": [["requires_payment_method", "processing"]] * 2,
        }
    ]
    assert "emails" not in result.figures


def test_two_confirmations_or_two_emails_fail() -> None:
    state = FinalState(
        outbox=[
            OutboxRow(1, "booking_confirmed", 5),
            OutboxRow(2, "booking_confirmed", 5),
            OutboxRow(3, "other", 6),
        ]
    )
    result = single_application(state, {5: 1, 6: 3})
    assert [(e["kind"], e["booking_id"]) for e in result.evidence] == [
        ("confirmation_queued_twice", 5),
        ("email_sent_twice", 6),
    ]


def test_unreadable_transitions_are_unknown() -> None:
    state = FinalState(errors=["database: OSError: connection refused"])
    assert single_application(state).verdict is Verdict.UNKNOWN
