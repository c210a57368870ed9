"""API operations on PaymentMethods: the test cards, raw numbers, attach and detach."""

from __future__ import annotations

from collections.abc import Mapping

from stripe_emulator import paging, render
from stripe_emulator.cards import CARDS, Behaviour, TestCard
from stripe_emulator.emulator import Emulator
from stripe_emulator.errors import CardError, InvalidRequestError, ValidationError
from stripe_emulator.forms import Params
from stripe_emulator.objects import JSON
from stripe_emulator.pipeline import Execute


def _luhn_ok(number: str) -> bool:
    digits = [int(d) for d in reversed(number)]
    total = sum(digits[0::2]) + sum(sum(divmod(2 * d, 10)) for d in digits[1::2])
    return total % 10 == 0


def _card_for(number: str) -> TestCard:
    number = number.replace(" ", "")
    if number in CARDS:
        return CARDS[number]
    if number.isdigit() and 13 <= len(number) <= 19 and _luhn_ok(number):
        return TestCard(number, "visa", Behaviour.SUCCEED)
    raise CardError("Your card number is incorrect.", code="incorrect_number", param="card[number]")


def create_payment_method(emu: Emulator, p: Params, _: Mapping[str, str]) -> Execute:
    p.text("type", required=True, choices=("card",))
    card = p.mapping("card")
    if card is None or not isinstance(card.get("number"), str):
        raise ValidationError(
            "Missing required param: card[number].", code="parameter_missing", param="card[number]"
        )
    unknown = set(card) - {"number", "exp_month", "exp_year", "cvc"}
    if unknown:
        raise ValidationError(
            f"Received unknown parameter: card[{sorted(unknown)[0]}]", code="parameter_unknown"
        )
    try:
        exp_month, exp_year = int(card.get("exp_month", 12)), int(card.get("exp_year", 2034))
    except (TypeError, ValueError):
        raise ValidationError("Invalid card expiry", param="card[exp_month]") from None
    metadata = p.metadata() or {}
    p.mapping("billing_details")
    number = card["number"]

    def execute() -> JSON:
        pm = emu.payments.new_payment_method(_card_for(number), exp_month, exp_year)
        pm.metadata = metadata
        return render.payment_method(pm)

    return execute


def retrieve_payment_method(emu: Emulator, p: Params, path: Mapping[str, str]) -> Execute:
    return lambda: render.payment_method(emu.payments.resolve_payment_method(path["id"], "id"))


def attach_payment_method(emu: Emulator, p: Params, path: Mapping[str, str]) -> Execute:
    customer = p.required_text("customer")

    def execute() -> JSON:
        pm = emu.payments.resolve_payment_method(path["id"], "id")
        old = pm.customer
        pm.customer = emu.state.customers.get(customer, "customer").id
        emu.state.payment_methods.reindex("customer", pm, old)
        emu.state.log.emit("payment_method.attached", render.payment_method(pm))
        return render.payment_method(pm)

    return execute


def detach_payment_method(emu: Emulator, p: Params, path: Mapping[str, str]) -> Execute:
    def execute() -> JSON:
        pm = emu.payments.resolve_payment_method(path["id"], "id")
        if pm.customer is None:
            raise InvalidRequestError(
                "The payment method you provided is not attached to a customer so detachment "
                "is impossible."
            )
        old, pm.customer = pm.customer, None
        emu.state.payment_methods.reindex("customer", pm, old)
        emu.state.log.emit("payment_method.detached", render.payment_method(pm), {"customer": old})
        return render.payment_method(pm)

    return execute


def list_payment_methods(emu: Emulator, p: Params, _: Mapping[str, str]) -> Execute:
    page = paging.page(p)
    customer = p.text("customer")
    p.text("type", choices=("card",))

    def execute() -> JSON:
        index = ("customer", customer) if customer else None
        found, more = emu.state.payment_methods.list(page, index)
        return render.list_object(
            "/v1/payment_methods", [render.payment_method(pm) for pm in found], more
        )

    return execute
