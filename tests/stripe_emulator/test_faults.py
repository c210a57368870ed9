"""The fault switches, through the admin route and the Python API."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest
import stripe

from stripe_emulator import EmulatorServer
from tests.conftest import TEST_KEY
from tests.helpers import payment

AUTH = {"Authorization": f"Bearer {TEST_KEY}"}


def test_latency_is_added(client: stripe.StripeClient, emulator: EmulatorServer) -> None:
    client.v1.payment_intents.create(params=payment())
    started = time.perf_counter()
    client.v1.payment_intents.create(params=payment())
    fast = time.perf_counter() - started
    emulator.set_faults(latency_ms=250)
    started = time.perf_counter()
    client.v1.payment_intents.create(params=payment())
    slow = time.perf_counter() - started
    assert slow >= 0.25 > fast


def test_rate_limit_with_should_retry_is_retried_by_the_sdk(
    make_client: Callable[..., stripe.StripeClient], emulator: EmulatorServer
) -> None:
    emulator.set_faults(error_rate=0.5, error_status=429, should_retry=True, seed=3)
    client = make_client(6)
    for i in range(6):
        pi = client.v1.payment_intents.create(params=payment(metadata={"order": f"rl-{i}"}))
        assert pi.status == "succeeded"
    assert emulator.fault_counts()["injected_errors"] > 0
    intents = emulator.ledger()["payment_intents"]
    assert len(intents) == 6


def test_rate_limit_without_should_retry_reaches_the_caller(
    make_client: Callable[..., stripe.StripeClient], emulator: EmulatorServer
) -> None:
    emulator.set_faults(error_rate=1.0, error_status=429)
    with pytest.raises(stripe.RateLimitError):
        make_client(3).v1.payment_intents.create(params=payment())
    assert emulator.fault_counts()["injected_errors"] == 1
    assert emulator.ledger()["payment_intents"] == []


def test_forced_declines_by_amount_and_metadata(
    client: stripe.StripeClient, emulator: EmulatorServer
) -> None:
    emulator.set_faults(
        decline_amounts=[4100], decline_metadata={"tenant": "unlucky"}, decline_code="do_not_honor"
    )
    assert client.v1.payment_intents.create(params=payment(amount=4000)).status == "succeeded"
    for params in (payment(amount=4100), payment(metadata={"tenant": "unlucky"})):
        with pytest.raises(stripe.CardError) as info:
            client.v1.payment_intents.create(params=params)
        assert info.value.error is not None
        assert info.value.error.decline_code == "do_not_honor"


def test_processing_delay_settles_on_the_emulator_clock(
    client: stripe.StripeClient, emulator: EmulatorServer
) -> None:
    emulator.set_faults(processing_delay_s=600)
    pi = client.v1.payment_intents.create(params=payment())
    assert pi.status == "processing"
    assert pi.latest_charge is None
    emulator.advance_clock(601)
    deadline = time.monotonic() + 5
    while client.v1.payment_intents.retrieve(pi.id).status != "succeeded":
        assert time.monotonic() < deadline, "processing never settled"
        time.sleep(0.02)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.payment_intents.cancel(pi.id)


def test_admin_route_sets_reads_and_clears_faults(emulator: EmulatorServer) -> None:
    with httpx.Client(base_url=emulator.url, headers=AUTH) as http:
        set_ = http.post("/_emulator/faults", json={"latency_ms": 5, "error_rate": 0.25})
        assert set_.status_code == 200
        assert set_.json()["faults"]["error_rate"] == 0.25
        assert http.get("/_emulator/faults").json()["faults"]["latency_ms"] == 5
        cleared = http.delete("/_emulator/faults").json()["faults"]
        assert (cleared["latency_ms"], cleared["error_rate"]) == (0, 0.0)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"error_rate": 1.5}, "error_rate"),
        ({"error_status": 404}, "error_status"),
        ({"latency_ms": "slow"}, "latency_ms"),
        ({"no_such_switch": 1}, "no_such_switch"),
        ({"should_retry": "yes"}, "should_retry"),
        ({"decline_amounts": ["a"]}, "decline_amounts"),
        ({"ignore_idempotency_keys": 1}, "ignore_idempotency_keys"),
    ],
)
def test_bad_fault_switches_are_400_naming_the_switch(
    emulator: EmulatorServer, body: dict[str, object], param: str
) -> None:
    with httpx.Client(base_url=emulator.url, headers=AUTH) as http:
        answer = http.post("/_emulator/faults", json=body)
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == param


def test_admin_routes_need_a_test_key(emulator: EmulatorServer) -> None:
    with httpx.Client(base_url=emulator.url) as http:
        assert http.post("/_emulator/reset").status_code == 401
        assert (
            http.post(
                "/_emulator/faults", json={}, headers={"Authorization": "Bearer sk_live_123456789"}
            ).status_code
            == 401
        )
        assert http.get("/_emulator/health").status_code == 200


def test_reset_forgets_everything(client: stripe.StripeClient, emulator: EmulatorServer) -> None:
    pi = client.v1.payment_intents.create(params=payment(), options={"idempotency_key": "k"})
    emulator.set_faults(latency_ms=1)
    with httpx.Client(base_url=emulator.url, headers=AUTH) as http:
        assert http.post("/_emulator/reset").json() == {"reset": True}
        assert http.get("/_emulator/faults").json()["faults"]["latency_ms"] == 0
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.payment_intents.retrieve(pi.id)
    again = client.v1.payment_intents.create(params=payment(), options={"idempotency_key": "k"})
    assert again.id != pi.id


def test_clock_route_only_moves_forward(emulator: EmulatorServer) -> None:
    with httpx.Client(base_url=emulator.url, headers=AUTH) as http:
        before = http.get("/_emulator/clock").json()["now"]
        after = http.post("/_emulator/clock", json={"advance": 3600}).json()["now"]
        assert after - before >= 3600
        assert http.post("/_emulator/clock", json={"advance": -5}).status_code == 400
        assert http.post("/_emulator/clock", content=b"not json").status_code == 400


def test_ledger_counts_succeeded_payments_per_order(
    client: stripe.StripeClient, emulator: EmulatorServer
) -> None:
    client.v1.payment_intents.create(params=payment(metadata={"order_id": "A"}))
    client.v1.payment_intents.create(params=payment(metadata={"order_id": "A"}))
    b = client.v1.payment_intents.create(params=payment(metadata={"order_id": "B"}))
    client.v1.refunds.create(params={"payment_intent": b.id, "amount": 100})
    with httpx.Client(base_url=emulator.url, headers=AUTH) as http:
        ledger = http.get("/_emulator/ledger").json()
    per_order: dict[str, int] = {}
    for pi in ledger["payment_intents"]:
        if pi["status"] == "succeeded":
            per_order[pi["metadata"]["order_id"]] = per_order.get(pi["metadata"]["order_id"], 0) + 1
    assert per_order == {"A": 2, "B": 1}
    assert [(r["payment_intent"], r["amount"]) for r in ledger["refunds"]] == [(b.id, 100)]
