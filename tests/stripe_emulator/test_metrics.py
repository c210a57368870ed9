"""``GET /metrics``: what a drill's Prometheus learns about the provider, read over HTTP.

The session emulator's registry lives as long as the session, so every test compares a
scrape after its actions with one before them.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import prometheus_client
import stripe
from prometheus_client.parser import text_string_to_metric_families

from stripe_emulator import EmulatorServer
from tests.helpers import Receiver, payment

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(emulator: EmulatorServer) -> Samples:
    response = httpx.get(f"{emulator.url}/metrics", trust_env=False)  # no API key needed
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def wait_until(check: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


REQUESTS = "stripe_emulator_http_requests_total"
CREATED = "stripe_emulator_payment_intents_created_total"
DELIVERIES = "stripe_emulator_webhook_deliveries_total"
PENDING = "stripe_emulator_webhook_deliveries_pending"
SWITCH = "stripe_emulator_fault_switch_active"


def test_requests_are_counted_by_route_template(
    client: stripe.StripeClient, emulator: EmulatorServer
) -> None:
    before = scrape(emulator)
    pi = client.v1.payment_intents.create(params=payment())
    client.v1.payment_intents.retrieve(pi.id)
    assert httpx.get(f"{emulator.url}/v1/nowhere/{pi.id}", trust_env=False).status_code == 404
    after = scrape(emulator)

    def delta(route: str, method: str, status: str) -> float:
        labels = {"route": route, "method": method, "status": status}
        return value(after, REQUESTS, **labels) - value(before, REQUESTS, **labels)

    assert delta("/v1/payment_intents", "POST", "200") == 1
    assert delta("/v1/payment_intents/{id}", "GET", "200") == 1
    assert delta("unmatched", "GET", "404") == 1
    assert not any(pi.id in str(key) for key in after), "ids must never become label values"


def test_created_intents_exclude_replays_and_survive_a_reset(
    client: stripe.StripeClient, emulator: EmulatorServer
) -> None:
    before = value(scrape(emulator), CREATED)
    options: stripe.RequestOptions = {"idempotency_key": "metrics-once"}
    first = client.v1.payment_intents.create(params=payment(), options=options)
    again = client.v1.payment_intents.create(params=payment(), options=options)
    assert first.id == again.id
    client.v1.payment_intents.create(params=payment())
    assert value(scrape(emulator), CREATED) == before + 2
    emulator.reset()
    assert value(scrape(emulator), CREATED) == before + 2


def test_webhook_deliveries_by_outcome_and_the_pending_gauge(
    client: stripe.StripeClient, emulator: EmulatorServer, receiver: Receiver
) -> None:
    receiver.fail_first = 1000
    before = scrape(emulator)
    client.v1.payment_intents.create(params=payment())
    failed_before = value(before, DELIVERIES, outcome="failed")
    assert wait_until(lambda: value(scrape(emulator), DELIVERIES, outcome="failed") > failed_before)
    assert value(scrape(emulator), PENDING) > 0  # the retries wait a minute of emulator time

    receiver.fail_first = 0
    emulator.advance_clock(3600)  # past every first retry
    assert wait_until(lambda: value(scrape(emulator), PENDING) == 0)
    after = scrape(emulator)
    delivered = value(after, DELIVERIES, outcome="delivered")
    assert delivered - value(before, DELIVERIES, outcome="delivered") == len(receiver.accepted())


def test_active_fault_switches(emulator: EmulatorServer) -> None:
    quiet = scrape(emulator)
    switches = {dict(labels)["switch"] for (name, labels) in quiet if name == SWITCH}
    assert {"error_rate", "drop_rate", "webhook_down_for_s", "latency_ms"} <= switches
    assert "seed" not in switches
    assert all(value(quiet, SWITCH, switch=s) == 0 for s in switches)

    emulator.set_faults(error_rate=0.5, webhook_down_for_s=30, seed=1)
    on = scrape(emulator)
    assert {s for s in switches if value(on, SWITCH, switch=s) == 1} == {
        "error_rate",
        "webhook_down_for_s",
    }
    emulator.advance_clock(31)  # the endpoint-down window is over; the error rate stays
    assert value(scrape(emulator), SWITCH, switch="webhook_down_for_s") == 0
    assert value(scrape(emulator), SWITCH, switch="error_rate") == 1


def test_the_emulator_keeps_its_own_registry(emulator: EmulatorServer) -> None:
    scrape(emulator)
    assert REQUESTS not in prometheus_client.generate_latest().decode()
