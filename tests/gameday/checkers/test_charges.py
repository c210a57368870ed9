"""No duplicate charge: per booking, one charge at the provider and in our tables, agreeing."""

from __future__ import annotations

from gameday.checkers import FinalState, IntentRow, PaymentRow, Verdict, no_duplicate_charge
from gameday.checkers.state import PAID


def intent(
    id: str, booking: int | None, status: str = "succeeded", amount: int = 5000, refunded: int = 0
) -> IntentRow:
    meta = {} if booking is None else {"booking_id": str(booking), "payment_id": "1"}
    return IntentRow(id, status, amount, refunded, refunded >= amount, meta, 1_700_000_000)


def payment(id: int, booking: int, intent_id: str | None, status: str = "succeeded") -> PaymentRow:
    return PaymentRow(id, booking, status, intent_id, 5000)


def test_one_charge_per_booking_passes() -> None:
    state = FinalState(
        payments=[payment(1, 7, "pi_a"), payment(2, 8, "pi_b", "refunded")],
        intents=[intent("pi_a", 7), intent("pi_b", 8, refunded=5000), intent("pi_x", None)],
    )
    result = no_duplicate_charge(state)
    assert result.verdict is Verdict.PASS, result.evidence
    assert result.figures["succeeded_intents"] == 2
    assert result.figures["intents_without_booking"] == 1


def test_two_succeeded_intents_for_one_booking_fail_naming_both() -> None:
    state = FinalState(
        payments=[payment(1, 7, "pi_a")],
        intents=[intent("pi_a", 7), intent("pi_b", 7, refunded=5000)],
    )
    result = no_duplicate_charge(state)
    assert result.verdict is Verdict.FAIL
    twice = [e for e in result.evidence if e["kind"] == "charged_twice_at_provider"]
    assert twice == [
        {
            "kind": "charged_twice_at_provider",
            "booking_id": 7,
            "intent_ids": ["pi_a", "pi_b"],
            "amounts": [5000, 5000],
            "refunded": [0, 5000],
        }
    ]
    # The refunded extra charge is also one our tables never recorded.
    assert {e["kind"] for e in result.evidence} == {
        "charged_twice_at_provider",
        "charge_not_recorded",
    }
    assert result.figures["bookings_charged_twice"] == 1


def test_two_paid_payments_in_our_tables_fail() -> None:
    state = FinalState(
        payments=[payment(1, 7, "pi_a"), payment(2, 7, "pi_b", "refunded")],
        intents=[intent("pi_a", 7), intent("pi_b", 9, refunded=5000)],
    )
    result = no_duplicate_charge(state)
    assert result.verdict is Verdict.FAIL
    assert result.evidence[0]["kind"] == "paid_twice_in_tables"
    assert result.evidence[0]["payment_ids"] == [1, 2]


def test_recorded_but_not_charged_and_untracked_charges_are_divergences() -> None:
    state = FinalState(
        payments=[payment(1, 7, "pi_a"), payment(2, 8, "pi_b", "refunded")],
        intents=[
            intent("pi_a", 7, status="requires_payment_method"),
            intent("pi_b", 8),  # we say refunded, the provider shows no refund
            intent("pi_c", 9),  # charged, and no payment of ours points at it
        ],
    )
    kinds = {e["booking_id"]: e["kind"] for e in no_duplicate_charge(state).evidence}
    assert kinds == {
        7: "recorded_not_charged",
        8: "refund_not_at_provider",
        9: "charge_not_recorded",
    }


def test_an_amount_that_differs_from_the_provider_is_a_divergence() -> None:
    state = FinalState(payments=[payment(1, 7, "pi_a")], intents=[intent("pi_a", 7, amount=9900)])
    result = no_duplicate_charge(state)
    assert [e["kind"] for e in result.evidence] == ["amount_mismatch"]
    assert result.evidence[0]["amounts"] == [5000, 9900]


def test_unreadable_provider_is_unknown_not_pass() -> None:
    state = FinalState(payments=[payment(1, 7, "pi_a")], errors=["provider: ConnectionError: x"])
    result = no_duplicate_charge(state)
    assert result.verdict is Verdict.UNKNOWN
    assert "provider" in result.summary


def test_a_duplicate_in_what_was_read_fails_even_with_the_database_down() -> None:
    state = FinalState(
        intents=[intent("pi_a", 7), intent("pi_b", 7)], errors=["database: OSError: refused"]
    )
    result = no_duplicate_charge(state)
    assert result.verdict is Verdict.FAIL
    assert [e["kind"] for e in result.evidence] == ["charged_twice_at_provider"]
    assert "could not read" in result.summary


def test_a_truncated_listing_does_not_call_a_payment_unrecorded() -> None:
    state = FinalState(
        payments=[payment(1, 7, "pi_old")],
        intents=[intent("pi_a", 8)],
        errors=["provider: more than 1 intents; only the newest were read"],
    )
    assert no_duplicate_charge(state).verdict is Verdict.UNKNOWN


def test_paid_statuses_are_the_money_taken_ones() -> None:
    assert {"succeeded", "refunded"} == PAID
