"""Stripe's test cards and their ``pm_card_*`` aliases, with the behaviour each one triggers.

Only the cards a booking drill needs, with Stripe's documented outcomes:
https://docs.stripe.com/testing (numbers, aliases and decline codes).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Behaviour(Enum):
    SUCCEED = "succeed"
    DECLINE = "decline"
    REQUIRE_3DS = "require_3ds"
    FAIL_ON_CHARGE = "fail_on_charge"


@dataclass(frozen=True, slots=True)
class TestCard:
    number: str
    brand: str
    behaviour: Behaviour
    decline_code: str | None = None
    funding: str = "credit"
    country: str = "US"

    @property
    def last4(self) -> str:
        return self.number[-4:]

    @property
    def fingerprint(self) -> str:
        return f"emu{self.number[-8:]}"


CARDS: dict[str, TestCard] = {
    card.number: card
    for card in (
        TestCard("4242424242424242", "visa", Behaviour.SUCCEED),
        TestCard("5555555555554444", "mastercard", Behaviour.SUCCEED),
        TestCard("4000000000009995", "visa", Behaviour.DECLINE, "insufficient_funds", "debit"),
        TestCard("4000000000000002", "visa", Behaviour.DECLINE, "generic_decline"),
        TestCard("4000000000003220", "visa", Behaviour.REQUIRE_3DS),
        TestCard("4000002760003184", "visa", Behaviour.REQUIRE_3DS),
        TestCard("4000000000000341", "visa", Behaviour.FAIL_ON_CHARGE, "generic_decline"),
    )
}

ALIASES: dict[str, str] = {
    "pm_card_visa": "4242424242424242",
    "pm_card_mastercard": "5555555555554444",
    "pm_card_visa_chargeDeclinedInsufficientFunds": "4000000000009995",
    "pm_card_chargeDeclinedInsufficientFunds": "4000000000009995",
    "pm_card_visa_chargeDeclined": "4000000000000002",
    "pm_card_chargeDeclined": "4000000000000002",
    "pm_card_threeDSecure2Required": "4000000000003220",
    "pm_card_authenticationRequired": "4000002760003184",
    "pm_card_chargeCustomerFail": "4000000000000341",
}

DECLINE_MESSAGES: dict[str, str] = {
    "insufficient_funds": "Your card has insufficient funds.",
    "generic_decline": "Your card was declined.",
}
