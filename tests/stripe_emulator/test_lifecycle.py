"""Each test card through the PaymentIntent lifecycle, via the official SDK."""

from __future__ import annotations

import pytest
import stripe

from stripe_emulator import EmulatorServer
from tests.helpers import payment


def test_visa_succeeds_and_charges_once(client: stripe.StripeClient) -> None:
    pi = client.v1.payment_intents.create(params=payment(metadata={"order": "o-1"}))
    assert (pi.status, pi.amount_received, pi.amount_capturable) == ("succeeded", 2500, 0)
    assert pi.latest_charge is not None
    charge = client.v1.charges.retrieve(str(pi.latest_charge))
    assert (charge.status, charge.captured, charge.paid) == ("succeeded", True, True)
    assert charge.amount_captured == 2500
    assert charge.payment_intent == pi.id
    assert charge.metadata.to_dict() == {"order": "o-1"}


@pytest.mark.parametrize(
    ("method", "decline_code"),
    [
        ("pm_card_visa_chargeDeclinedInsufficientFunds", "insufficient_funds"),
        ("pm_card_chargeDeclined", "generic_decline"),
        ("pm_card_chargeCustomerFail", "generic_decline"),
    ],
)
def test_declining_cards(client: stripe.StripeClient, method: str, decline_code: str) -> None:
    with pytest.raises(stripe.CardError) as info:
        client.v1.payment_intents.create(params=payment(payment_method=method))
    error = info.value
    assert error.http_status == 402
    assert error.code == "card_declined"
    assert error.error is not None
    assert error.error.decline_code == decline_code
    assert error.error.payment_intent is not None
    pi = client.v1.payment_intents.retrieve(error.error.payment_intent.id)
    assert pi.status == "requires_payment_method"
    assert pi.payment_method is None
    assert pi.last_payment_error is not None
    assert pi.last_payment_error.decline_code == decline_code
    charge = client.v1.charges.retrieve(str(pi.latest_charge))
    assert (charge.status, charge.paid, charge.failure_code) == ("failed", False, "card_declined")
    retried = client.v1.payment_intents.confirm(pi.id, params={"payment_method": "pm_card_visa"})
    assert retried.status == "succeeded"
    assert retried.last_payment_error is None


@pytest.mark.parametrize(
    ("number", "outcome"),
    [
        ("4242424242424242", "succeeded"),
        ("4000000000009995", "declined"),
        ("4000000000000002", "declined"),
        ("4000000000003220", "requires_action"),
        ("4000000000000341", "declined"),
    ],
)
def test_raw_test_card_numbers(client: stripe.StripeClient, number: str, outcome: str) -> None:
    pm = client.v1.payment_methods.create(
        params={"type": "card", "card": {"number": number, "exp_month": 12, "exp_year": 2034}}
    )
    assert pm.card is not None
    assert pm.card.last4 == number[-4:]
    try:
        pi = client.v1.payment_intents.create(params=payment(payment_method=pm.id))
        status = pi.status
    except stripe.CardError:
        status = "declined"
    assert status == outcome


def test_0341_attaches_to_a_customer_but_fails_on_charge(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create(params={"email": "guest@example.test"})
    pm = client.v1.payment_methods.create(
        params={"type": "card", "card": {"number": "4000000000000341"}}
    )
    attached = client.v1.payment_methods.attach(pm.id, params={"customer": customer.id})
    assert attached.customer == customer.id
    listed = client.v1.payment_methods.list(params={"customer": customer.id})
    assert [p.id for p in listed.data] == [pm.id]
    with pytest.raises(stripe.CardError):
        client.v1.payment_intents.create(params=payment(payment_method=pm.id, customer=customer.id))


def test_an_invalid_card_number_is_refused(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.CardError) as info:
        client.v1.payment_methods.create(params={"type": "card", "card": {"number": "1234"}})
    assert info.value.code == "incorrect_number"


def test_3ds_challenge_completed(client: stripe.StripeClient, emulator: EmulatorServer) -> None:
    pi = client.v1.payment_intents.create(
        params=payment(payment_method="pm_card_threeDSecure2Required")
    )
    assert pi.status == "requires_action"
    assert pi.next_action is not None
    assert pi.next_action.type == "redirect_to_url"
    assert pi.latest_charge is None
    emulator.authenticate(pi.id, succeed=True)
    done = client.v1.payment_intents.retrieve(pi.id)
    assert (done.status, done.amount_received, done.next_action) == ("succeeded", 2500, None)


def test_3ds_challenge_failed(client: stripe.StripeClient, emulator: EmulatorServer) -> None:
    pi = client.v1.payment_intents.create(
        params=payment(payment_method="pm_card_authenticationRequired")
    )
    emulator.authenticate(pi.id, succeed=False)
    failed = client.v1.payment_intents.retrieve(pi.id)
    assert failed.status == "requires_payment_method"
    assert failed.last_payment_error is not None
    assert failed.last_payment_error.code == "payment_intent_authentication_failure"
    assert failed.latest_charge is None


def test_3ds_route_only_for_intents_awaiting_action(
    client: stripe.StripeClient, emulator: EmulatorServer
) -> None:
    pi = client.v1.payment_intents.create(params=payment())
    with pytest.raises(Exception, match="status of succeeded"):
        emulator.authenticate(pi.id, succeed=True)


def test_two_step_confirm(client: stripe.StripeClient) -> None:
    pi = client.v1.payment_intents.create(params={"amount": 1200, "currency": "eur"})
    assert pi.status == "requires_payment_method"
    with pytest.raises(stripe.InvalidRequestError, match="missing a payment method"):
        client.v1.payment_intents.confirm(pi.id)
    updated = client.v1.payment_intents.update(pi.id, params={"payment_method": "pm_card_visa"})
    assert updated.status == "requires_confirmation"
    confirmed = client.v1.payment_intents.confirm(pi.id)
    assert confirmed.status == "succeeded"
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.payment_intents.confirm(pi.id)
    assert info.value.code == "payment_intent_unexpected_state"


def test_manual_capture_full_and_partial(client: stripe.StripeClient) -> None:
    full = client.v1.payment_intents.create(params=payment(capture_method="manual"))
    assert (full.status, full.amount_capturable, full.amount_received) == (
        "requires_capture",
        2500,
        0,
    )
    charge = client.v1.charges.retrieve(str(full.latest_charge))
    assert charge.captured is False
    captured = client.v1.payment_intents.capture(full.id)
    assert (captured.status, captured.amount_received) == ("succeeded", 2500)
    assert client.v1.charges.retrieve(str(full.latest_charge)).captured is True

    partial = client.v1.payment_intents.create(params=payment(capture_method="manual"))
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.payment_intents.capture(partial.id, params={"amount_to_capture": 9999})
    assert info.value.code == "amount_too_large"
    taken = client.v1.payment_intents.capture(partial.id, params={"amount_to_capture": 1000})
    assert (taken.amount_received, taken.amount_capturable) == (1000, 0)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.payment_intents.capture(partial.id)


@pytest.mark.parametrize(
    "setup",
    ["requires_payment_method", "requires_confirmation", "requires_action", "requires_capture"],
)
def test_cancelable_states(client: stripe.StripeClient, setup: str) -> None:
    params = {
        "requires_payment_method": {"amount": 900, "currency": "usd"},
        "requires_confirmation": {
            "amount": 900,
            "currency": "usd",
            "payment_method": "pm_card_visa",
        },
        "requires_action": payment(payment_method="pm_card_threeDSecure2Required"),
        "requires_capture": payment(capture_method="manual"),
    }[setup]
    pi = client.v1.payment_intents.create(params=params)  # type: ignore[arg-type]
    assert pi.status == setup
    canceled = client.v1.payment_intents.cancel(
        pi.id, params={"cancellation_reason": "requested_by_customer"}
    )
    assert canceled.status == "canceled"
    assert canceled.cancellation_reason == "requested_by_customer"
    assert canceled.canceled_at is not None
    assert canceled.amount_capturable == 0


def test_succeeded_and_canceled_cannot_be_canceled_or_changed(client: stripe.StripeClient) -> None:
    done = client.v1.payment_intents.create(params=payment())
    canceled = client.v1.payment_intents.cancel(
        client.v1.payment_intents.create(params={"amount": 900, "currency": "usd"}).id
    )
    for pi in (done, canceled):
        with pytest.raises(stripe.InvalidRequestError) as info:
            client.v1.payment_intents.cancel(pi.id)
        assert info.value.code == "payment_intent_unexpected_state"
        with pytest.raises(stripe.InvalidRequestError):
            client.v1.payment_intents.update(pi.id, params={"amount": 5000})
    kept = client.v1.payment_intents.retrieve(done.id)
    assert (kept.status, kept.amount) == ("succeeded", 2500)


def test_update_amount_and_metadata(client: stripe.StripeClient) -> None:
    pi = client.v1.payment_intents.create(
        params={"amount": 900, "currency": "usd", "metadata": {"a": "1", "b": "2"}}
    )
    updated = client.v1.payment_intents.update(
        pi.id, params={"amount": 1500, "metadata": {"b": "", "c": "3"}}
    )
    assert updated.amount == 1500
    assert updated.metadata.to_dict() == {"a": "1", "c": "3"}


def test_list_by_customer_and_expand(client: stripe.StripeClient) -> None:
    alice = client.v1.customers.create(params={"email": "alice@example.test"})
    bob = client.v1.customers.create(params={"email": "bob@example.test"})
    mine = [
        client.v1.payment_intents.create(params=payment(customer=alice.id)).id for _ in range(3)
    ]
    client.v1.payment_intents.create(params=payment(customer=bob.id))
    listed = client.v1.payment_intents.list(params={"customer": alice.id})
    assert [pi.id for pi in listed.data] == mine[::-1]
    expanded = client.v1.payment_intents.retrieve(mine[0], params={"expand": ["latest_charge"]})
    assert isinstance(expanded.latest_charge, stripe.Charge)
    assert expanded.latest_charge.amount_captured == 2500
    in_list = client.v1.payment_intents.list(
        params={"customer": alice.id, "expand": ["data.latest_charge"]}
    )
    assert all(isinstance(pi.latest_charge, stripe.Charge) for pi in in_list.data)
    plain = client.v1.payment_intents.list(params={"customer": alice.id})
    assert all(isinstance(pi.latest_charge, str) for pi in plain.data)


def test_deleted_customer_cannot_pay(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create()
    deleted = client.v1.customers.delete(customer.id)
    assert deleted.deleted is True
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.payment_intents.create(params=payment(customer=customer.id))
    assert info.value.code == "resource_missing"


def test_metadata_updates_follow_one_rule_everywhere(client: stripe.StripeClient) -> None:
    pi = client.v1.payment_intents.create(
        params=payment(capture_method="manual", metadata={"a": "1", "b": "2"})
    )
    captured = client.v1.payment_intents.capture(pi.id, params={"metadata": {"a": "", "c": "3"}})
    assert captured.metadata.to_dict() == {"b": "2", "c": "3"}
    customer = client.v1.customers.create(params={"metadata": {"x": "1"}})
    cleared = client.v1.customers.update(customer.id, params={"metadata": ""})
    assert cleared.metadata is not None
    assert cleared.metadata.to_dict() == {}
    refund = client.v1.refunds.create(params={"payment_intent": pi.id, "metadata": {"r": "1"}})
    kept = client.v1.refunds.update(refund.id, params={"metadata": {"s": "2"}})
    assert kept.metadata is not None
    assert kept.metadata.to_dict() == {"r": "1", "s": "2"}
