"""Refunds, full and partial, never more than was captured.

The check and the update happen in one synchronous step on the event loop, so concurrent
refunds of one charge serialize: the sum of refunds can never pass ``amount_captured``.
"""

from __future__ import annotations

from stripe_emulator import render
from stripe_emulator.errors import InvalidRequestError
from stripe_emulator.objects import Charge, Refund
from stripe_emulator.payments import Payments
from stripe_emulator.state import State


def _money(amount: int, currency: str) -> str:
    symbol = "$" if currency == "usd" else f"{currency.upper()} "
    return f"{symbol}{amount / 100:.2f}"


class Refunds:
    def __init__(self, state: State, payments: Payments) -> None:
        self.s = state
        self.payments = payments

    def charge_to_refund(self, charge: str | None, payment_intent: str | None) -> Charge:
        if charge is not None:
            return self.s.charges.get(charge, "charge")
        if payment_intent is None:
            raise InvalidRequestError(
                "One of the following params should be provided for this request: charge or "
                "payment_intent.",
                code="parameter_missing",
            )
        pi = self.s.payment_intents.get(payment_intent, "payment_intent")
        if pi.status != "succeeded" or pi.latest_charge is None:
            raise InvalidRequestError(
                f"This PaymentIntent ({pi.id}) does not have a successful charge to refund.",
                code="charge_not_refundable",
                param="payment_intent",
            )
        return self.s.charges.get(pi.latest_charge)

    def create(
        self,
        ch: Charge,
        amount: int | None,
        reason: str | None,
        metadata: dict[str, str] | None,
    ) -> Refund:
        if ch.status != "succeeded" or not ch.captured:
            raise InvalidRequestError(
                f"Charge {ch.id} has not been captured and cannot be refunded.",
                code="charge_not_refundable",
            )
        remaining = ch.amount_captured - ch.amount_refunded
        if remaining <= 0:
            raise InvalidRequestError(
                f"Charge {ch.id} has already been refunded.", code="charge_already_refunded"
            )
        to_refund = remaining if amount is None else amount
        if to_refund > remaining:
            raise InvalidRequestError(
                f"Refund amount ({_money(to_refund, ch.currency)}) is greater than unrefunded "
                f"amount on charge ({_money(remaining, ch.currency)})",
                code="amount_too_large",
                param="amount",
            )
        refund = Refund(
            id=self.s.ids.new("re"),
            created=self.s.now(),
            amount=to_refund,
            currency=ch.currency,
            charge=ch.id,
            payment_intent=ch.payment_intent,
            reason=reason,
            metadata=metadata or {},
        )
        self.s.refunds.add(refund)
        previous = {"amount_refunded": ch.amount_refunded}
        ch.amount_refunded += to_refund
        ch.refunds.append(refund.id)
        self.s.log.emit("refund.created", render.refund(refund))
        self.s.log.emit("charge.refunded", self.payments.render_charge(ch), previous)
        return refund
