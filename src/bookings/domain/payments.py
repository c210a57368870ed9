"""The payment state machine, mirroring Stripe's PaymentIntent statuses plus ``refunded``.

Webhook events arrive at least once and in any order, so an event may only move a payment
forward: ``advance`` never regresses. Stripe itself moves an open intent back to
``requires_payment_method`` after a decline or a failed 3-D Secure challenge; only an
authoritative read of the intent's *current* state (our own confirm call's answer or a
fresh retrieve) may do that, through ``sync``, and never out of a final state.
"""

from __future__ import annotations

import enum


class PaymentStatus(enum.StrEnum):
    REQUIRES_PAYMENT_METHOD = "requires_payment_method"
    REQUIRES_CONFIRMATION = "requires_confirmation"
    REQUIRES_ACTION = "requires_action"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    REFUNDED = "refunded"
    CANCELED = "canceled"


_RANK = {
    PaymentStatus.REQUIRES_PAYMENT_METHOD: 0,
    PaymentStatus.REQUIRES_CONFIRMATION: 0,
    PaymentStatus.REQUIRES_ACTION: 1,
    PaymentStatus.PROCESSING: 2,
    PaymentStatus.SUCCEEDED: 3,
    PaymentStatus.REFUNDED: 4,
}
OPEN = frozenset(
    {
        PaymentStatus.REQUIRES_PAYMENT_METHOD,
        PaymentStatus.REQUIRES_CONFIRMATION,
        PaymentStatus.REQUIRES_ACTION,
        PaymentStatus.PROCESSING,
    }
)
FINAL = frozenset({PaymentStatus.REFUNDED, PaymentStatus.CANCELED})


def parse_status(raw: str) -> PaymentStatus:
    """Stripe's ``requires_capture`` means the money is authorised: treat it as processing."""
    if raw == "requires_capture":
        return PaymentStatus.PROCESSING
    return PaymentStatus(raw)


def advance(current: PaymentStatus, incoming: PaymentStatus) -> PaymentStatus:
    """The state after an event reporting ``incoming``: forward moves only."""
    if current in FINAL:
        return current
    if incoming is PaymentStatus.CANCELED:
        return incoming if current in OPEN else current
    return incoming if _RANK[incoming] > _RANK[current] else current


def sync(current: PaymentStatus, authoritative: PaymentStatus) -> PaymentStatus:
    """The state after reading the provider's current view of an intent."""
    if current in OPEN and authoritative in OPEN:
        return authoritative
    return advance(current, authoritative)
