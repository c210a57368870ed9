"""Stripe's test card numbers, as the payment methods the client may send.

A client sends either a ``pm_...`` id or one of the documented test card numbers; raw card
numbers are never forwarded to the provider and never stored or logged.
"""

from __future__ import annotations

import re

from bookings.errors import InvalidRequest

TEST_CARDS = {
    "4242424242424242": "pm_card_visa",
    "5555555555554444": "pm_card_mastercard",
    "4000000000009995": "pm_card_visa_chargeDeclinedInsufficientFunds",
    "4000000000000002": "pm_card_visa_chargeDeclined",
    "4000000000003220": "pm_card_threeDSecure2Required",
    "4000002760003184": "pm_card_authenticationRequired",
    "4000000000000341": "pm_card_chargeCustomerFail",
}
_PM_ID = re.compile(r"pm_[A-Za-z0-9_]{1,100}")


def payment_method_for(value: str) -> str:
    digits = re.sub(r"[\s-]", "", value)
    if digits in TEST_CARDS:
        return TEST_CARDS[digits]
    if _PM_ID.fullmatch(value):
        return value
    raise InvalidRequest(
        "payment_method must be a pm_... id or a Stripe test card number",
        code="invalid_payment_method",
    )
