"""Idempotency as Stripe documents it, proven through the official SDK."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import stripe

from stripe_emulator import EmulatorServer
from tests.helpers import payment


def _intents_for(emulator: EmulatorServer, order: str) -> list[dict[str, Any]]:
    return [
        pi for pi in emulator.ledger()["payment_intents"] if pi["metadata"].get("order") == order
    ]


def test_same_key_replays_the_first_response(
    client: stripe.StripeClient, emulator: EmulatorServer
) -> None:
    params = payment(metadata={"order": "o-1"})
    first = client.v1.payment_intents.create(params=params, options={"idempotency_key": "k-1"})
    second = client.v1.payment_intents.create(params=params, options={"idempotency_key": "k-1"})
    assert second.id == first.id
    assert second.last_response is not None
    assert second.last_response.headers.get("Idempotent-Replayed") == "true"
    assert len(_intents_for(emulator, "o-1")) == 1


def test_a_declined_payment_is_replayed_as_the_same_decline(
    client: stripe.StripeClient, emulator: EmulatorServer
) -> None:
    params = payment(payment_method="pm_card_chargeDeclined", metadata={"order": "o-d"})
    errors = []
    for _ in range(2):
        with pytest.raises(stripe.CardError) as info:
            client.v1.payment_intents.create(params=params, options={"idempotency_key": "k-d"})
        errors.append(info.value)
    assert [e.code for e in errors] == ["card_declined", "card_declined"]
    assert errors[0].http_body == errors[1].http_body
    assert len(_intents_for(emulator, "o-d")) == 1


def test_a_saved_500_is_replayed_even_after_the_fault_is_gone(
    client: stripe.StripeClient, emulator: EmulatorServer
) -> None:
    emulator.set_faults(error_rate=1.0, error_status=500)
    params = payment(metadata={"order": "o-500"})
    with pytest.raises(stripe.APIError) as first:
        client.v1.payment_intents.create(params=params, options={"idempotency_key": "k-500"})
    emulator.clear_faults()
    with pytest.raises(stripe.APIError) as replay:
        client.v1.payment_intents.create(params=params, options={"idempotency_key": "k-500"})
    assert first.value.http_status == replay.value.http_status == 500
    assert replay.value.headers is not None
    assert replay.value.headers.get("Idempotent-Replayed") == "true"
    assert _intents_for(emulator, "o-500") == []
    fresh = client.v1.payment_intents.create(params=params, options={"idempotency_key": "k-new"})
    assert fresh.status == "succeeded"


def test_a_retryable_error_saves_nothing(
    client: stripe.StripeClient, emulator: EmulatorServer
) -> None:
    emulator.set_faults(error_rate=1.0, error_status=503, should_retry=True)
    params = payment(metadata={"order": "o-503"})
    with pytest.raises(stripe.APIError) as info:
        client.v1.payment_intents.create(params=params, options={"idempotency_key": "k-503"})
    assert info.value.headers is not None
    assert info.value.headers.get("Stripe-Should-Retry") == "true"
    emulator.clear_faults()
    after = client.v1.payment_intents.create(params=params, options={"idempotency_key": "k-503"})
    assert after.status == "succeeded"
    assert after.last_response is not None
    assert after.last_response.headers.get("Idempotent-Replayed") is None


def test_other_parameters_with_the_same_key_are_refused(client: stripe.StripeClient) -> None:
    client.v1.payment_intents.create(params=payment(), options={"idempotency_key": "k-mix"})
    with pytest.raises(stripe.IdempotencyError, match="same parameters"):
        client.v1.payment_intents.create(
            params=payment(amount=9900), options={"idempotency_key": "k-mix"}
        )


def test_another_endpoint_with_the_same_key_is_refused(client: stripe.StripeClient) -> None:
    client.v1.customers.create(
        params={"email": "a@example.test"}, options={"idempotency_key": "k-ep"}
    )
    with pytest.raises(stripe.IdempotencyError, match="same endpoint"):
        client.v1.payment_intents.create(params=payment(), options={"idempotency_key": "k-ep"})


def test_parameter_order_does_not_matter(client: stripe.StripeClient) -> None:
    first = client.v1.payment_intents.create(
        params={"amount": 700, "currency": "usd", "metadata": {"a": "1", "b": "2"}},
        options={"idempotency_key": "k-order"},
    )
    again = client.v1.payment_intents.create(
        params={"metadata": {"b": "2", "a": "1"}, "currency": "usd", "amount": 700},
        options={"idempotency_key": "k-order"},
    )
    assert again.id == first.id


def test_validation_failure_saves_nothing(
    client: stripe.StripeClient, emulator: EmulatorServer
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.payment_intents.create(
            params=payment(amount=10), options={"idempotency_key": "k-val"}
        )
    assert info.value.code == "amount_too_small"
    fixed = client.v1.payment_intents.create(
        params=payment(metadata={"order": "o-val"}), options={"idempotency_key": "k-val"}
    )
    assert fixed.status == "succeeded"
    assert len(_intents_for(emulator, "o-val")) == 1


def test_keys_expire_after_24_hours_of_emulator_time(
    client: stripe.StripeClient, emulator: EmulatorServer
) -> None:
    params = payment(metadata={"order": "o-ttl"})
    first = client.v1.payment_intents.create(params=params, options={"idempotency_key": "k-ttl"})
    emulator.advance_clock(23 * 3600)
    kept = client.v1.payment_intents.create(params=params, options={"idempotency_key": "k-ttl"})
    emulator.advance_clock(2 * 3600)
    reused = client.v1.payment_intents.create(params=params, options={"idempotency_key": "k-ttl"})
    assert kept.id == first.id
    assert reused.id != first.id
    assert len(_intents_for(emulator, "o-ttl")) == 2


@pytest.mark.parametrize("round_", range(5))
def test_concurrent_requests_with_one_key_execute_once(
    make_client: Callable[..., stripe.StripeClient], emulator: EmulatorServer, round_: int
) -> None:
    """Ten simultaneous requests, one key: one PaymentIntent, 409 for requests that overlap."""
    emulator.set_faults(latency_ms=300)
    order, callers = f"o-race-{round_}", 10
    barrier = threading.Barrier(callers)
    params = payment(metadata={"order": order})

    def pay(client: stripe.StripeClient) -> str:
        barrier.wait(timeout=10)
        try:
            return client.v1.payment_intents.create(
                params=params, options={"idempotency_key": f"k-race-{round_}"}
            ).id
        except stripe.APIError as exc:
            return f"{exc.http_status}:{exc.error.code if exc.error else None}"

    clients = [make_client(0) for _ in range(callers)]
    with ThreadPoolExecutor(callers) as pool:
        outcomes = list(pool.map(pay, clients))
    winners = {o for o in outcomes if o.startswith("pi_")}
    assert len(winners) == 1
    losers = [o for o in outcomes if not o.startswith("pi_")]
    assert losers, "no request overlapped the first one"
    assert set(losers) <= {"409:idempotency_key_in_use"}, losers
    assert len(_intents_for(emulator, order)) == 1


@pytest.mark.parametrize("seed", range(4))
def test_dropped_answers_and_sdk_retries_never_duplicate_a_payment(
    make_client: Callable[..., stripe.StripeClient], emulator: EmulatorServer, seed: int
) -> None:
    """The lost-response case: processed, answer dropped, the SDK retries with its key."""
    emulator.set_faults(drop_rate=0.3, seed=seed)
    client = make_client(5)
    orders = [f"o-drop-{seed}-{i}" for i in range(8)]
    for order in orders:
        pi = client.v1.payment_intents.create(params=payment(metadata={"order": order}))
        assert pi.status == "succeeded"
    assert emulator.fault_counts()["dropped_connections"] > 0
    for order in orders:
        assert len(_intents_for(emulator, order)) == 1


def test_a_provider_ignoring_keys_duplicates_on_retry(
    make_client: Callable[..., stripe.StripeClient], emulator: EmulatorServer
) -> None:
    """The control case: the checks above catch a provider that ignores keys (localstripe)."""
    emulator.set_faults(drop_rate=1.0, ignore_idempotency_keys=True)
    with pytest.raises(stripe.APIConnectionError):
        make_client(1).v1.payment_intents.create(params=payment(metadata={"order": "o-nokey"}))
    assert emulator.fault_counts()["dropped_connections"] == 2
    assert len(_intents_for(emulator, "o-nokey")) == 2
