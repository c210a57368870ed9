"""Refunds: full, partial, and never more than was captured, even under a storm."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
import stripe

from stripe_emulator import EmulatorServer
from tests.helpers import payment


def test_full_refund_then_nothing_left(client: stripe.StripeClient) -> None:
    pi = client.v1.payment_intents.create(params=payment())
    refund = client.v1.refunds.create(params={"payment_intent": pi.id, "reason": "duplicate"})
    assert (refund.status, refund.amount, refund.reason) == ("succeeded", 2500, "duplicate")
    charge = client.v1.charges.retrieve(str(pi.latest_charge))
    assert (charge.amount_refunded, charge.refunded) == (2500, True)
    assert charge.refunds is not None
    assert [r.id for r in charge.refunds.data] == [refund.id]
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.refunds.create(params={"charge": charge.id})
    assert info.value.code == "charge_already_refunded"


def test_partial_refunds_add_up_to_the_capture(client: stripe.StripeClient) -> None:
    pi = client.v1.payment_intents.create(params=payment(amount=1000))
    client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 300})
    client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 300})
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 500})
    assert info.value.code == "amount_too_large"
    assert info.value.param == "amount"
    rest = client.v1.refunds.create(params={"payment_intent": pi.id})
    assert rest.amount == 400
    listed = client.v1.refunds.list(params={"payment_intent": pi.id})
    assert sum(r.amount for r in listed.data) == 1000


def test_partial_capture_limits_refunds(client: stripe.StripeClient) -> None:
    pi = client.v1.payment_intents.create(params=payment(amount=1000, capture_method="manual"))
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.refunds.create(params={"payment_intent": pi.id})
    assert info.value.code == "charge_not_refundable"
    client.v1.payment_intents.capture(pi.id, params={"amount_to_capture": 600})
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 601})
    assert client.v1.refunds.create(params={"payment_intent": pi.id}).amount == 600


def test_declined_payment_cannot_be_refunded(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.CardError) as info:
        client.v1.payment_intents.create(params=payment(payment_method="pm_card_chargeDeclined"))
    assert info.value.error is not None
    charge = info.value.error.charge
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.refunds.create(params={"charge": str(charge)})
    assert refused.value.code == "charge_not_refundable"


def test_refund_needs_a_target(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.refunds.create(params={"amount": 100})
    assert info.value.code == "parameter_missing"


@pytest.mark.parametrize(("round_", "amount"), [(0, None), (1, 700), (2, 300), (3, 1000)])
def test_twenty_concurrent_refunds_never_exceed_the_capture(
    make_client: Callable[..., stripe.StripeClient],
    emulator: EmulatorServer,
    round_: int,
    amount: int | None,
) -> None:
    """20 threads refund one 2,500 payment at the same instant; the total stays ≤ 2,500."""
    pi = make_client(0).v1.payment_intents.create(params=payment())
    callers = 20
    barrier = threading.Barrier(callers)

    def refund(client: stripe.StripeClient) -> int | str:
        barrier.wait(timeout=10)
        params = {"payment_intent": pi.id} | ({} if amount is None else {"amount": amount})
        try:
            return int(client.v1.refunds.create(params=params).amount)  # type: ignore[arg-type]
        except stripe.InvalidRequestError as exc:
            return str(exc.code)

    clients = [make_client(0) for _ in range(callers)]
    with ThreadPoolExecutor(callers) as pool:
        outcomes = list(pool.map(refund, clients))
    refused = [o for o in outcomes if isinstance(o, str)]
    assert set(refused) <= {"charge_already_refunded", "amount_too_large"}, refused
    refunded = [o for o in outcomes if isinstance(o, int)]
    expected_successes = 1 if amount is None else 2500 // amount
    assert sum(1 for r in refunded if r) == expected_successes
    assert sum(refunded) <= 2500
    ledger_refunds = [r for r in emulator.ledger()["refunds"] if r["payment_intent"] == pi.id]
    assert sum(r["amount"] for r in ledger_refunds) == sum(refunded)
    charge = make_client(0).v1.charges.retrieve(str(pi.latest_charge))
    assert charge.amount_refunded == sum(refunded)
