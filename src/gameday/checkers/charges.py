"""No duplicate charge: each logical order (a booking) is paid at most once, and the
provider's record of money agrees with ours.

Three views, each judged with what could be read:

- the provider: succeeded PaymentIntents whose metadata names the booking, at most one. A
  refunded intent still counts: the customer *was* charged twice, and a refund days later
  is the incident, not its absence;
- our tables: payments of the booking in ``succeeded`` or ``refunded``, at most one;
- agreement: our succeeded or refunded payment points at an intent the provider shows as
  succeeded (and refunded if we say so, for the amount we recorded), and every succeeded
  intent naming a booking is one of our payments. A claim that something is *missing*
  needs the complete other side, so it is only made when that side was read in full.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from gameday.checkers.result import CheckResult, judge
from gameday.checkers.state import PAID, FinalState, IntentRow, PaymentRow

NAME = "no_duplicate_charge"


def no_duplicate_charge(state: FinalState) -> CheckResult:
    """Per booking: one succeeded intent, one paid payment, and both sides agree."""
    provider_missing, payments_missing = state.missing("provider"), state.missing("payments")
    by_booking: defaultdict[int, list[IntentRow]] = defaultdict(list)
    for intent in state.intents:
        if intent.status == "succeeded" and intent.booking_id is not None:
            by_booking[intent.booking_id].append(intent)
    paid: defaultdict[int, list[PaymentRow]] = defaultdict(list)
    for payment in state.payments:
        if payment.status in PAID:
            paid[payment.booking_id].append(payment)
    violations = [_twice_at_provider(b, found) for b, found in by_booking.items() if len(found) > 1]
    violations += [_twice_in_tables(b, found) for b, found in paid.items() if len(found) > 1]
    violations += _disagreements(state.intents, paid, complete=not provider_missing)
    if not (provider_missing or payments_missing):
        violations += _untracked(by_booking, state.payments)
    figures = {
        "intents": len(state.intents),
        "succeeded_intents": sum(len(found) for found in by_booking.values()),
        "intents_without_booking": sum(i.booking_id is None for i in state.intents),
        "paid_payments": sum(len(found) for found in paid.values()),
        "bookings_charged_twice": sum(len(found) > 1 for found in by_booking.values()),
    }
    return judge(
        NAME, sorted(violations, key=lambda v: (v["booking_id"], v["kind"])),
        missing=provider_missing + payments_missing, figures=figures,
        failed="{n} charge problems: a booking paid more than once or a disagreement with "
        "the provider",
        passed="every booking was charged at most once and the provider agrees",
    )  # fmt: skip


def _twice_at_provider(booking_id: int, intents: list[IntentRow]) -> dict[str, Any]:
    return {
        "kind": "charged_twice_at_provider",
        "booking_id": booking_id,
        "intent_ids": [i.id for i in intents],
        "amounts": [i.amount for i in intents],
        "refunded": [i.amount_refunded for i in intents],
    }


def _twice_in_tables(booking_id: int, payments: list[PaymentRow]) -> dict[str, Any]:
    return {
        "kind": "paid_twice_in_tables",
        "booking_id": booking_id,
        "payment_ids": [p.id for p in payments],
        "intent_ids": [p.provider_intent_id for p in payments],
        "amounts": [p.amount_cents for p in payments],
    }


def _disagreements(
    listed: list[IntentRow], paid: dict[int, list[PaymentRow]], *, complete: bool
) -> list[dict[str, Any]]:
    """Our paid payments against the provider's intents; "no such intent" needs the
    complete listing."""
    intents = {i.id: i for i in listed}
    found: list[dict[str, Any]] = []
    for payments in paid.values():
        for payment in payments:
            intent = intents.get(payment.provider_intent_id or "")
            if intent is None and not complete:
                continue
            kind = _disagreement(payment, intent)
            if kind is not None:
                found.append({
                    "kind": kind, "booking_id": payment.booking_id, "payment_id": payment.id,
                    "intent_ids": [payment.provider_intent_id], "ours": payment.status,
                    "theirs": intent.status if intent else None,
                    "amounts": [payment.amount_cents, intent.amount if intent else None],
                })  # fmt: skip
    return found


def _disagreement(payment: PaymentRow, intent: IntentRow | None) -> str | None:
    if intent is None or intent.status != "succeeded":
        return "recorded_not_charged"
    if payment.status == "refunded" and intent.amount_refunded <= 0:
        return "refund_not_at_provider"
    if intent.amount != payment.amount_cents:
        return "amount_mismatch"
    return None


def _untracked(
    by_booking: dict[int, list[IntentRow]], payments: list[PaymentRow]
) -> list[dict[str, Any]]:
    ours = {p.provider_intent_id for p in payments if p.provider_intent_id}
    return [
        {
            "kind": "charge_not_recorded",
            "booking_id": booking_id,
            "intent_ids": [i.id],
            "amounts": [i.amount],
            "refunded": [i.amount_refunded],
        }
        for booking_id, intents in by_booking.items()
        for i in intents
        if i.id not in ours
    ]
