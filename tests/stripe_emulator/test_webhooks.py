"""Webhooks and events, end to end: the official SDK talks to the real emulator over HTTP,
and real HTTP receivers verify every delivery with ``stripe.Webhook.construct_event``.

Time-based behaviour (retries, give-up, the endpoint-down window, ``processing``) is driven
by advancing the emulator clock, so no test waits for more than a few seconds of wall time.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import pytest
import stripe

from stripe_emulator import EmulatorServer, Settings
from stripe_emulator.webhooks import DeliverySettings
from tests.helpers import Receiver

RETRY_BASE_S = 60.0
"""The session emulator's ``DeliverySettings.retry_base_s``: attempt n waits base * 2**(n-1)."""
MAX_BACKOFF_S = 12 * 3600.0
RETRY_WINDOW_S = 3 * 24 * 3600.0
JITTER = 0.1
SIGNATURE = re.compile(r"^t=(\d+),v1=([0-9a-f]{64})$")
WAIT_S = 5.0
ISOLATED_KEY = "sk_test_webhooks_isolated"
QUIET_S = 0.3
"""How long to watch for something that must not happen (the scheduler wakes at once)."""


# -- helpers -----------------------------------------------------------------------------------


@dataclass
class RawReceiver(Receiver):
    """A ``Receiver`` that also keeps the raw bytes, header and arrival time of each POST."""

    raw: list[tuple[bytes, str, float]] = field(default_factory=list)
    endpoint_id: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        # Poll for shutdown every 50 ms instead of http.server's 0.5 s: faster teardown.
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        self.server.serve_forever(poll_interval=0.05)

    def handle(self, payload: bytes, signature: str) -> int:
        with self.lock:
            self.raw.append((payload, signature, time.time()))
        return super().handle(payload, signature)

    def raw_copy(self) -> list[tuple[bytes, str, float]]:
        with self.lock:
            return list(self.raw)


class Endpoints:
    """Extra webhook endpoints, each served by its own verifying receiver."""

    def __init__(self, client: stripe.StripeClient, stack: ExitStack) -> None:
        self._client = client
        self._stack = stack

    def add(self, enabled_events: list[Any], fail_first: int = 0) -> RawReceiver:
        """``enabled_events`` is ``list[Any]``: the SDK's enum has no ``group.*`` patterns."""
        rec = RawReceiver(fail_first=fail_first)
        self._stack.enter_context(rec)
        endpoint = self._client.v1.webhook_endpoints.create(
            params={"url": rec.url, "enabled_events": enabled_events}
        )
        assert endpoint.secret is not None
        rec.secret = endpoint.secret
        rec.endpoint_id = endpoint.id
        return rec


@pytest.fixture
def endpoints(client: stripe.StripeClient) -> Iterator[Endpoints]:
    with ExitStack() as stack:
        yield Endpoints(client, stack)


def wait_until(predicate: Callable[[], bool], timeout_s: float = WAIT_S) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def attempts_for(emulator: EmulatorServer, event_id: str) -> list[dict[str, Any]]:
    return [a for a in emulator.deliveries() if a["event"] == event_id]


def wait_for_attempts(
    emulator: EmulatorServer, event_id: str, count: int, timeout_s: float = WAIT_S
) -> list[dict[str, Any]]:
    assert wait_until(lambda: len(attempts_for(emulator, event_id)) >= count, timeout_s), (
        f"expected {count} attempts for {event_id}, saw {attempts_for(emulator, event_id)}"
    )
    return attempts_for(emulator, event_id)


def obj(event: stripe.Event) -> dict[str, Any]:
    """An event's ``data.object`` as a plain dict."""
    return event.data.object.to_dict()


def all_events(client: stripe.StripeClient) -> list[stripe.Event]:
    """Every event, oldest first (the API lists newest first)."""
    found: list[stripe.Event] = []
    starting_after: str | None = None
    while True:
        if starting_after is None:
            page = client.v1.events.list(params={"limit": 100})
        else:
            page = client.v1.events.list(params={"limit": 100, "starting_after": starting_after})
        found.extend(page.data)
        if not page.has_more:
            return found[::-1]
        starting_after = page.data[-1].id


def events_of(client: stripe.StripeClient, pi_id: str) -> list[stripe.Event]:
    """Events about one PaymentIntent or its charges and refunds, oldest first."""
    return [
        e
        for e in all_events(client)
        if obj(e).get("id") == pi_id or obj(e).get("payment_intent") == pi_id
    ]


def types_of(client: stripe.StripeClient, pi_id: str) -> list[str]:
    return [e.type for e in events_of(client, pi_id)]


def pay(
    client: stripe.StripeClient, card: str = "pm_card_visa", **extra: Any
) -> stripe.PaymentIntent:
    params: dict[str, Any] = {
        "amount": 2000,
        "currency": "usd",
        "payment_method": card,
        "confirm": True,
        **extra,
    }
    return client.v1.payment_intents.create(params=params)  # type: ignore[arg-type]


def only(events: list[stripe.Event]) -> stripe.Event:
    assert len(events) == 1, [e.type for e in events]
    return events[0]


def signature_time(header: str) -> int:
    match = SIGNATURE.match(header)
    assert match is not None, header
    return int(match.group(1))


# -- 1. signatures -----------------------------------------------------------------------------


def test_every_delivery_carries_a_signature_the_sdk_accepts(
    client: stripe.StripeClient, endpoints: Endpoints
) -> None:
    rec = endpoints.add(["*"])
    pi = pay(client)
    client.v1.refunds.create(params={"payment_intent": pi.id})
    client.v1.customers.create(params={"email": "signed@example.com"})
    expected = {e.id for e in all_events(client)}
    assert len(expected) == 6

    assert wait_until(lambda: {e["id"] for e in rec.accepted()} == expected)
    raw = rec.raw_copy()
    assert len(raw) == len(expected)
    assert all(d.verified for d in rec.deliveries)
    for payload, header, received_at in raw:
        assert abs(signature_time(header) - received_at) <= 5
        event = stripe.Webhook.construct_event(payload, header, rec.secret)
        assert event.id in expected
        with pytest.raises(stripe.SignatureVerificationError):
            stripe.Webhook.construct_event(payload, header, "whsec_not_the_endpoint_secret")
        with pytest.raises(stripe.SignatureVerificationError):
            stripe.Webhook.construct_event(payload + b" ", header, rec.secret)


def test_each_attempt_is_signed_with_a_fresh_timestamp(
    emulator: EmulatorServer, client: stripe.StripeClient, endpoints: Endpoints
) -> None:
    rec = endpoints.add(["customer.created"], fail_first=1)
    client.v1.customers.create()
    event = only(all_events(client))

    assert wait_until(lambda: len(rec.raw_copy()) == 1)
    first_payload, first_header, _ = rec.raw_copy()[0]
    first_t = signature_time(first_header)
    # ``t=`` has one-second resolution: let the wall clock tick before the retry is due.
    assert wait_until(lambda: int(time.time()) > first_t, timeout_s=2.0)
    emulator.advance_clock(RETRY_BASE_S * (1 + JITTER) + 1)

    assert wait_until(lambda: len(rec.accepted()) == 1)
    (_, first_header_again, _), (second_payload, second_header, _) = rec.raw_copy()
    assert first_header_again == first_header
    assert second_header != first_header
    assert signature_time(second_header) > first_t
    # The emulator records an attempt once the answer is back: a moment after the receiver.
    assert [a["attempt"] for a in wait_for_attempts(emulator, event.id, 2)] == [1, 2]
    for payload, header in ((first_payload, first_header), (second_payload, second_header)):
        assert stripe.Webhook.construct_event(payload, header, rec.secret).id == event.id
    assert [d.status for d in rec.deliveries] == [500, 200]


# -- 2. retries --------------------------------------------------------------------------------


def test_failing_endpoint_is_retried_with_exponential_backoff_until_accepted(
    emulator: EmulatorServer, client: stripe.StripeClient, endpoints: Endpoints
) -> None:
    rec = endpoints.add(["payment_intent.succeeded"], fail_first=2)
    pi = pay(client)
    event = only(client.v1.events.list(params={"type": "payment_intent.succeeded"}).data)
    assert obj(event)["id"] == pi.id

    first = wait_for_attempts(emulator, event.id, 1)
    assert first[0]["status"] == 500
    # The second attempt is due 60 s (±10 %) later on the emulator clock, not before 54 s.
    emulator.advance_clock(50)
    time.sleep(QUIET_S)
    assert len(attempts_for(emulator, event.id)) == 1
    emulator.advance_clock(20)
    second = wait_for_attempts(emulator, event.id, 2)
    assert second[1]["status"] == 500
    # The third waits twice as long: 120 s (±10 %), so not before 108 s.
    emulator.advance_clock(100)
    time.sleep(QUIET_S)
    assert len(attempts_for(emulator, event.id)) == 2
    emulator.advance_clock(40)
    attempts = wait_for_attempts(emulator, event.id, 3)

    assert [a["attempt"] for a in attempts] == [1, 2, 3]
    assert [a["status"] for a in attempts] == [500, 500, 200]
    assert not any(a["duplicate"] for a in attempts)
    assert {a["endpoint"] for a in attempts} == {rec.endpoint_id}
    assert [e["id"] for e in rec.accepted()] == [event.id]
    assert all(d.verified for d in rec.deliveries)
    assert client.v1.events.retrieve(event.id).pending_webhooks == 0
    delivered = client.v1.events.list(params={"delivery_success": True, "limit": 100}).data
    assert event.id in {e.id for e in delivered}

    emulator.advance_clock(24 * 3600)
    time.sleep(QUIET_S)
    assert len(attempts_for(emulator, event.id)) == 3
    assert len(rec.accepted()) == 1


# -- 3. give-up after three days ---------------------------------------------------------------
#
# Each of these runs on its own emulator: giving up is the end of a delivery's life, and
# whatever it does to the dispatcher must not leak into the session's shared emulator.


@dataclass
class Isolated:
    server: EmulatorServer
    client: stripe.StripeClient
    receiver: Receiver


@pytest.fixture
def isolated() -> Iterator[Isolated]:
    """A private emulator (session settings) with a verifying receiver for every event."""
    settings = Settings(delivery=DeliverySettings(timeout_s=2.0, retry_base_s=RETRY_BASE_S))
    with EmulatorServer(settings) as server, Receiver() as rec:
        client = stripe.StripeClient(
            ISOLATED_KEY, base_addresses={"api": server.url}, max_network_retries=0
        )
        endpoint = client.v1.webhook_endpoints.create(
            params={"url": rec.url, "enabled_events": ["*"]}
        )
        rec.secret = endpoint.secret or ""
        yield Isolated(server, client, rec)


def _attempts_and_timers(
    emulator: EmulatorServer, event_id: str
) -> tuple[list[dict[str, Any]], int]:
    """The event's attempts and the number of pending timers, read in one step on the loop."""
    emu = emulator.emulator

    def read() -> tuple[list[dict[str, Any]], int]:
        rows = [a for a in emu.dispatcher.attempts if a["event"] == event_id]
        return rows, len(emu.scheduler)

    return emulator.call(read)


def _fail_until_given_up(emulator: EmulatorServer, event_id: str) -> list[dict[str, Any]]:
    """Advance the clock past each retry (max delay, +1 s) until no retry is scheduled."""
    for number in range(1, 40):
        wait_for_attempts(emulator, event_id, number)
        rows, timers = _attempts_and_timers(emulator, event_id)
        if timers == 0:
            return rows
        delay = min(RETRY_BASE_S * 2 ** (number - 1), MAX_BACKOFF_S)
        emulator.advance_clock(delay * (1 + JITTER) + 1)
    raise AssertionError(f"{event_id} was still being retried after 40 attempts")


def test_retries_stop_after_three_days_and_the_event_stays_undelivered(
    isolated: Isolated,
) -> None:
    emulator, client, receiver = isolated.server, isolated.client, isolated.receiver
    receiver.fail_first = 10**6
    client.v1.customers.create()
    event = only(all_events(client))

    rows = _fail_until_given_up(emulator, event.id)

    count = len(rows)
    assert [a["attempt"] for a in rows] == list(range(1, count + 1))
    assert all(a["status"] == 500 for a in rows)
    assert 12 <= count <= 18
    deadline = event.created + RETRY_WINDOW_S
    # It gave up because even the shortest next delay would pass the window ...
    last_delay = min(RETRY_BASE_S * 2 ** (count - 1), MAX_BACKOFF_S)
    assert rows[-1]["at"] + last_delay * (1 + JITTER) > deadline
    # ... and not earlier: the attempt before it was scheduled within the window.
    previous_delay = min(RETRY_BASE_S * 2 ** (count - 2), MAX_BACKOFF_S)
    assert rows[-2]["at"] + previous_delay * (1 - JITTER) <= deadline + 1
    assert len(receiver.deliveries) == count
    assert all(d.verified for d in receiver.deliveries)

    emulator.advance_clock(RETRY_WINDOW_S)
    time.sleep(QUIET_S)
    assert len(attempts_for(emulator, event.id)) == count

    failed = client.v1.events.list(params={"delivery_success": False}).data
    assert [e.id for e in failed] == [event.id]
    assert client.v1.events.list(params={"delivery_success": True}).data == []
    assert client.v1.events.retrieve(event.id).pending_webhooks == 1


def test_unreachable_endpoint_is_retried_then_given_up(isolated: Isolated) -> None:
    emulator, client = isolated.server, isolated.client
    closed = Receiver()  # bound but never served, then closed: connections are refused
    url = closed.url
    closed.server.server_close()
    unreachable = client.v1.webhook_endpoints.create(
        params={"url": url, "enabled_events": ["customer.created"]}
    )
    client.v1.customers.create()
    event = only(all_events(client))
    assert isolated.receiver.wait_for(lambda r: len(r.accepted()) == 1, timeout_s=WAIT_S)

    def to_unreachable() -> list[dict[str, Any]]:
        return [a for a in attempts_for(emulator, event.id) if a["endpoint"] == unreachable.id]

    assert wait_until(lambda: len(to_unreachable()) == 1)
    first = to_unreachable()[0]
    assert first["status"] is None
    assert first["error"]
    emulator.advance_clock(RETRY_BASE_S * (1 + JITTER) + 1)
    assert wait_until(lambda: len(to_unreachable()) == 2)
    assert [(a["attempt"], a["status"]) for a in to_unreachable()] == [(1, None), (2, None)]

    emulator.advance_clock(RETRY_WINDOW_S * 2)
    assert wait_until(lambda: len(to_unreachable()) == 3)  # the overdue retry, then it gives up
    time.sleep(QUIET_S)
    assert len(to_unreachable()) == 3
    assert _attempts_and_timers(emulator, event.id)[1] == 0
    failed = client.v1.events.list(params={"delivery_success": False}).data
    assert [e.id for e in failed] == [event.id]
    assert client.v1.events.retrieve(event.id).pending_webhooks == 1


def test_webhooks_keep_flowing_after_a_delivery_is_given_up(isolated: Isolated) -> None:
    emulator, client, receiver = isolated.server, isolated.client, isolated.receiver
    receiver.fail_first = 10**6
    client.v1.customers.create()
    abandoned = only(all_events(client))
    _fail_until_given_up(emulator, abandoned.id)

    receiver.fail_first = 0
    later = client.v1.customers.create()
    assert receiver.wait_for(lambda r: len(r.accepted()) == 1, timeout_s=3.0)
    assert receiver.accepted()[0]["data"]["object"]["id"] == later.id


# -- 4.-7. the webhook fault switches ----------------------------------------------------------


def test_duplicate_switch_delivers_every_event_twice(
    emulator: EmulatorServer, client: stripe.StripeClient, receiver: Receiver
) -> None:
    emulator.set_faults(webhook_duplicate_rate=1.0)
    pi = pay(client)
    ids = [e.id for e in events_of(client, pi.id)]
    assert len(ids) == 3

    assert wait_until(lambda: len(receiver.accepted()) == 2 * len(ids))
    assert Counter(e["id"] for e in receiver.accepted()) == dict.fromkeys(ids, 2)
    assert all(d.verified for d in receiver.deliveries)
    # The emulator records an attempt once the answer is back: a moment after the receiver.
    assert wait_until(lambda: all(len(attempts_for(emulator, i)) == 2 for i in ids))
    for event_id in ids:
        attempts = attempts_for(emulator, event_id)
        assert sorted(a["duplicate"] for a in attempts) == [False, True]
        assert {a["attempt"] for a in attempts} == {1}
        assert {a["status"] for a in attempts} == {200}
        assert client.v1.events.retrieve(event_id).pending_webhooks == 0


def test_reorder_switch_delivers_out_of_order_but_delivers_everything(
    emulator: EmulatorServer, client: stripe.StripeClient, receiver: Receiver
) -> None:
    # Seed 22 draws first-delivery delays that deliver several intents'
    # payment_intent.succeeded well (> 0.25 s) before their payment_intent.created.
    emulator.set_faults(webhook_reorder_window_s=0.5, seed=22)
    intents = [pay(client).id for _ in range(10)]
    created_order = [e.id for e in all_events(client)]
    assert len(created_order) == 30

    assert wait_until(lambda: len(receiver.accepted()) >= len(created_order))
    time.sleep(0.1)
    arrived = [e["id"] for e in receiver.accepted()]
    assert sorted(arrived) == sorted(created_order)
    assert arrived != created_order
    assert all(d.verified for d in receiver.deliveries)

    by_id = {e["id"]: e for e in receiver.accepted()}
    inverted = []
    for pi_id in intents:
        seen = [
            by_id[i]["type"]
            for i in arrived
            if by_id[i]["type"].startswith("payment_intent.")
            and by_id[i]["data"]["object"]["id"] == pi_id
        ]
        if seen == ["payment_intent.succeeded", "payment_intent.created"]:
            inverted.append(pi_id)
    assert inverted


def test_delay_switch_holds_back_the_first_delivery(
    client: stripe.StripeClient, emulator: EmulatorServer, receiver: Receiver
) -> None:
    emulator.set_faults(webhook_delay_s=0.5)
    started = time.monotonic()
    client.v1.customers.create()
    event = only(all_events(client))
    time.sleep(QUIET_S)
    assert receiver.deliveries == []
    assert attempts_for(emulator, event.id) == []

    assert receiver.wait_for(lambda r: len(r.accepted()) == 1, timeout_s=3.0)
    assert time.monotonic() - started >= 0.45
    assert receiver.types() == ["customer.created"]


def test_endpoint_down_window_fails_attempts_until_it_ends(
    emulator: EmulatorServer, client: stripe.StripeClient, receiver: Receiver
) -> None:
    emulator.set_faults(webhook_down_for_s=120)
    client.v1.customers.create()
    event = only(all_events(client))

    first = wait_for_attempts(emulator, event.id, 1)[0]
    assert first["attempt"] == 1
    assert first["status"] is None
    assert "fault" in (first["error"] or "")
    time.sleep(QUIET_S)
    assert receiver.deliveries == []
    assert len(attempts_for(emulator, event.id)) == 1

    emulator.advance_clock(130)  # past the window and past the first retry delay
    assert receiver.wait_for(lambda r: len(r.accepted()) == 1, timeout_s=WAIT_S)
    attempts = wait_for_attempts(emulator, event.id, 2)  # recorded after the answer
    assert [(a["attempt"], a["status"]) for a in attempts] == [(1, None), (2, 200)]
    assert receiver.accepted()[0]["id"] == event.id
    assert client.v1.events.retrieve(event.id).pending_webhooks == 0


# -- 8. enabled_events -------------------------------------------------------------------------


def test_endpoints_receive_only_their_enabled_events(
    emulator: EmulatorServer,
    client: stripe.StripeClient,
    receiver: Receiver,
    endpoints: Endpoints,
) -> None:
    refunds_only = endpoints.add(["charge.refunded"])
    intents_only = endpoints.add(["payment_intent.*"])
    pi = pay(client)
    client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 500})
    emitted = types_of(client, pi.id)
    assert sorted(emitted) == sorted(
        [
            "payment_intent.created",
            "charge.succeeded",
            "payment_intent.succeeded",
            "refund.created",
            "charge.refunded",
        ]
    )

    ids = {e.id for e in events_of(client, pi.id)}

    def ours() -> list[dict[str, Any]]:
        return [a for a in emulator.deliveries() if a["event"] in ids]

    expected_total = len(emitted) + 1 + 2
    assert wait_until(lambda: len(ours()) >= expected_total)
    time.sleep(0.1)
    assert len(ours()) == expected_total
    assert sorted(receiver.types()) == sorted(emitted)
    assert refunds_only.types() == ["charge.refunded"]
    assert sorted(intents_only.types()) == ["payment_intent.created", "payment_intent.succeeded"]
    by_endpoint: dict[str, set[str]] = {}
    for attempt in ours():
        by_endpoint.setdefault(attempt["endpoint"], set()).add(attempt["type"])
    assert by_endpoint[refunds_only.endpoint_id] == {"charge.refunded"}
    assert by_endpoint[intents_only.endpoint_id] == {
        "payment_intent.created",
        "payment_intent.succeeded",
    }


# -- 9. which events each flow emits -----------------------------------------------------------


def test_successful_payment_emits_created_charge_succeeded_and_succeeded(
    client: stripe.StripeClient,
) -> None:
    key = f"order-{uuid.uuid4()}"
    params: dict[str, Any] = {
        "amount": 2000,
        "currency": "usd",
        "payment_method": "pm_card_visa",
        "confirm": True,
    }
    pi = client.v1.payment_intents.create(
        params=params,  # type: ignore[arg-type]
        options={"idempotency_key": key},
    )
    assert pi.status == "succeeded"
    assert types_of(client, pi.id) == [
        "payment_intent.created",
        "charge.succeeded",
        "payment_intent.succeeded",
    ]
    succeeded = only(client.v1.events.list(params={"types": ["payment_intent.succeeded"]}).data)
    assert obj(succeeded)["id"] == pi.id
    assert obj(succeeded)["status"] == "succeeded"
    charge = only(client.v1.events.list(params={"type": "charge.succeeded"}).data)
    assert obj(charge)["payment_intent"] == pi.id
    assert obj(charge)["id"] == pi.latest_charge
    for event in events_of(client, pi.id):
        assert event.request is not None
        assert event.request.idempotency_key == key
        assert (event.request.id or "").startswith("req_")
        assert event.pending_webhooks == 0

    # A replay of the same request is answered from the saved response and emits nothing.
    replayed = client.v1.payment_intents.create(
        params=params,  # type: ignore[arg-type]
        options={"idempotency_key": key},
    )
    assert replayed.id == pi.id
    assert len(events_of(client, pi.id)) == 3


def test_declined_payment_emits_charge_failed_and_payment_failed(
    client: stripe.StripeClient,
) -> None:
    pi = client.v1.payment_intents.create(params={"amount": 2000, "currency": "usd"})
    with pytest.raises(stripe.CardError):
        client.v1.payment_intents.confirm(
            pi.id, params={"payment_method": "pm_card_visa_chargeDeclinedInsufficientFunds"}
        )
    assert types_of(client, pi.id) == [
        "payment_intent.created",
        "charge.failed",
        "payment_intent.payment_failed",
    ]
    failed = only(client.v1.events.list(params={"type": "payment_intent.payment_failed"}).data)
    assert obj(failed)["id"] == pi.id
    assert obj(failed)["status"] == "requires_payment_method"
    assert obj(failed)["last_payment_error"]["decline_code"] == "insufficient_funds"
    charge = only(client.v1.events.list(params={"type": "charge.failed"}).data)
    assert obj(charge)["payment_intent"] == pi.id
    assert obj(charge)["status"] == "failed"


def test_three_d_secure_success_emits_requires_action_then_success(
    emulator: EmulatorServer, client: stripe.StripeClient
) -> None:
    pi = pay(client, "pm_card_threeDSecure2Required")
    assert pi.status == "requires_action"
    assert types_of(client, pi.id) == ["payment_intent.created", "payment_intent.requires_action"]
    action = only(client.v1.events.list(params={"type": "payment_intent.requires_action"}).data)
    assert obj(action)["id"] == pi.id

    emulator.authenticate(pi.id, True)
    assert types_of(client, pi.id) == [
        "payment_intent.created",
        "payment_intent.requires_action",
        "charge.succeeded",
        "payment_intent.succeeded",
    ]
    succeeded = only(client.v1.events.list(params={"type": "payment_intent.succeeded"}).data)
    assert obj(succeeded)["id"] == pi.id
    # Completed outside any API request, so no request is attached.
    assert succeeded.request is not None
    assert succeeded.request.id is None
    assert succeeded.request.idempotency_key is None


def test_three_d_secure_failure_emits_payment_failed(
    emulator: EmulatorServer, client: stripe.StripeClient
) -> None:
    pi = pay(client, "pm_card_threeDSecure2Required")
    emulator.authenticate(pi.id, False)
    assert types_of(client, pi.id) == [
        "payment_intent.created",
        "payment_intent.requires_action",
        "payment_intent.payment_failed",
    ]
    failed = only(client.v1.events.list(params={"type": "payment_intent.payment_failed"}).data)
    assert obj(failed)["id"] == pi.id
    assert obj(failed)["last_payment_error"]["code"] == "payment_intent_authentication_failure"
    assert client.v1.events.list(params={"type": "charge.*"}).data == []


def test_manual_capture_emits_capturable_then_captured_and_succeeded(
    client: stripe.StripeClient,
) -> None:
    pi = pay(client, capture_method="manual")
    assert pi.status == "requires_capture"
    assert types_of(client, pi.id) == [
        "payment_intent.created",
        "charge.succeeded",
        "payment_intent.amount_capturable_updated",
    ]
    capturable = only(
        client.v1.events.list(params={"type": "payment_intent.amount_capturable_updated"}).data
    )
    assert obj(capturable)["id"] == pi.id
    assert obj(capturable)["amount_capturable"] == 2000

    client.v1.payment_intents.capture(pi.id)
    assert types_of(client, pi.id)[3:] == ["charge.captured", "payment_intent.succeeded"]
    captured = only(client.v1.events.list(params={"type": "charge.captured"}).data)
    assert obj(captured)["payment_intent"] == pi.id
    assert obj(captured)["captured"] is True


def test_cancel_emits_canceled(client: stripe.StripeClient) -> None:
    pi = client.v1.payment_intents.create(params={"amount": 2000, "currency": "usd"})
    client.v1.payment_intents.cancel(pi.id)
    assert types_of(client, pi.id) == ["payment_intent.created", "payment_intent.canceled"]
    canceled = only(client.v1.events.list(params={"type": "payment_intent.canceled"}).data)
    assert obj(canceled)["id"] == pi.id
    assert obj(canceled)["status"] == "canceled"


def test_refund_emits_refund_created_and_charge_refunded(client: stripe.StripeClient) -> None:
    pi = pay(client)
    refund = client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 700})
    assert types_of(client, pi.id)[3:] == ["refund.created", "charge.refunded"]
    created = only(client.v1.events.list(params={"type": "refund.created"}).data)
    assert obj(created)["id"] == refund.id
    assert obj(created)["payment_intent"] == pi.id
    refunded = only(client.v1.events.list(params={"type": "charge.refunded"}).data)
    assert obj(refunded)["id"] == pi.latest_charge
    assert obj(refunded)["amount_refunded"] == 700
    assert refunded.data.to_dict()["previous_attributes"] == {"amount_refunded": 0}


def test_customer_created_event(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create(params={"email": "jo@example.com"})
    event = only(client.v1.events.list(params={"type": "customer.created"}).data)
    assert obj(event)["id"] == customer.id
    assert obj(event)["email"] == "jo@example.com"


def test_processing_delay_emits_processing_then_succeeded_on_the_clock(
    emulator: EmulatorServer, client: stripe.StripeClient
) -> None:
    emulator.set_faults(processing_delay_s=30)
    pi = pay(client)
    assert pi.status == "processing"
    assert types_of(client, pi.id) == ["payment_intent.created", "payment_intent.processing"]
    processing = only(client.v1.events.list(params={"type": "payment_intent.processing"}).data)
    assert obj(processing)["id"] == pi.id

    emulator.advance_clock(31)

    def settled() -> bool:
        return bool(client.v1.events.list(params={"type": "payment_intent.succeeded"}).data)

    assert wait_until(settled)
    assert types_of(client, pi.id) == [
        "payment_intent.created",
        "payment_intent.processing",
        "charge.succeeded",
        "payment_intent.succeeded",
    ]
    succeeded = only(client.v1.events.list(params={"type": "payment_intent.succeeded"}).data)
    assert obj(succeeded)["id"] == pi.id
    assert succeeded.request is not None
    assert succeeded.request.id is None  # settled by the clock, not by an API request
    assert client.v1.payment_intents.retrieve(pi.id).status == "succeeded"


# -- 10. listing events ------------------------------------------------------------------------


def test_events_list_filters_by_type_wildcard_types_and_created(
    emulator: EmulatorServer, client: stripe.StripeClient
) -> None:
    pi = pay(client)
    emulator.advance_clock(10)
    customer = client.v1.customers.create()
    everything = all_events(client)
    assert [e.type for e in everything] == [
        "payment_intent.created",
        "charge.succeeded",
        "payment_intent.succeeded",
        "customer.created",
    ]

    wildcard = client.v1.events.list(params={"type": "payment_intent.*"}).data
    assert [e.type for e in wildcard] == ["payment_intent.succeeded", "payment_intent.created"]
    assert {obj(e)["id"] for e in wildcard} == {pi.id}

    several = client.v1.events.list(params={"types": ["charge.succeeded", "customer.created"]})
    assert [e.type for e in several.data] == ["customer.created", "charge.succeeded"]

    assert client.v1.events.list(params={"type": "charge.refunded"}).data == []

    latest = everything[-1]
    recent = client.v1.events.list(params={"created": {"gte": latest.created}}).data
    assert [obj(e)["id"] for e in recent] == [customer.id]
    older = client.v1.events.list(params={"created": {"lt": latest.created}}).data
    assert len(older) == 3

    with pytest.raises(stripe.InvalidRequestError):
        client.v1.events.list(params={"type": "customer.created", "types": ["charge.succeeded"]})


def test_events_list_paginates_newest_first(client: stripe.StripeClient) -> None:
    customers = [client.v1.customers.create().id for _ in range(5)]

    first = client.v1.events.list(params={"limit": 2})
    assert first.has_more
    assert [obj(e)["id"] for e in first.data] == customers[::-1][:2]
    second = client.v1.events.list(params={"limit": 2, "starting_after": first.data[-1].id})
    assert second.has_more
    third = client.v1.events.list(params={"limit": 2, "starting_after": second.data[-1].id})
    assert not third.has_more
    pages = [*first.data, *second.data, *third.data]
    assert [obj(e)["id"] for e in pages] == customers[::-1]
    assert len({e.id for e in pages}) == 5

    back = client.v1.events.list(params={"limit": 2, "ending_before": third.data[0].id})
    assert [e.id for e in back.data] == [e.id for e in second.data]
    assert back.has_more


# -- 11. the webhook endpoint API --------------------------------------------------------------


def test_webhook_endpoint_create_retrieve_list_update_delete(
    client: stripe.StripeClient, receiver: Receiver, endpoints: Endpoints
) -> None:
    created = client.v1.webhook_endpoints.create(
        params={
            "url": "http://localhost:9/hook",
            "enabled_events": ["charge.refunded", "payment_intent.succeeded"],
            "description": "orders",
        }
    )
    assert (created.secret or "").startswith("whsec_")
    assert created.status == "enabled"
    assert created.enabled_events == ["charge.refunded", "payment_intent.succeeded"]

    fetched = client.v1.webhook_endpoints.retrieve(created.id)
    assert "secret" not in fetched
    assert fetched.url == "http://localhost:9/hook"
    assert fetched.description == "orders"

    listed = client.v1.webhook_endpoints.list().data
    assert created.id in {w.id for w in listed}
    assert all("secret" not in w for w in listed)

    updated = client.v1.webhook_endpoints.update(
        created.id, params={"enabled_events": ["customer.created"], "description": "crm"}
    )
    assert updated.enabled_events == ["customer.created"]
    assert updated.description == "crm"
    assert "secret" not in updated

    deleted = client.v1.webhook_endpoints.delete(created.id)
    assert deleted.deleted is True
    assert created.id not in {w.id for w in client.v1.webhook_endpoints.list().data}
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.webhook_endpoints.retrieve(created.id)
    assert missing.value.code == "resource_missing"


def test_disabled_endpoint_receives_nothing_until_enabled_again(
    client: stripe.StripeClient, receiver: Receiver, endpoints: Endpoints
) -> None:
    rec = endpoints.add(["customer.created"])
    disabled = client.v1.webhook_endpoints.update(rec.endpoint_id, params={"disabled": True})
    assert disabled.status == "disabled"

    client.v1.customers.create()
    assert receiver.wait_for(lambda r: len(r.accepted()) == 1, timeout_s=WAIT_S)
    time.sleep(QUIET_S)
    assert rec.deliveries == []

    enabled = client.v1.webhook_endpoints.update(rec.endpoint_id, params={"disabled": False})
    assert enabled.status == "enabled"
    later = client.v1.customers.create()
    assert rec.wait_for(lambda r: len(r.accepted()) == 1, timeout_s=WAIT_S)
    assert rec.accepted()[0]["data"]["object"]["id"] == later.id


def test_deleted_endpoint_receives_nothing(
    client: stripe.StripeClient, receiver: Receiver, endpoints: Endpoints
) -> None:
    rec = endpoints.add(["*"])
    client.v1.webhook_endpoints.delete(rec.endpoint_id)
    client.v1.customers.create()
    assert receiver.wait_for(lambda r: len(r.accepted()) == 1, timeout_s=WAIT_S)
    time.sleep(QUIET_S)
    assert rec.deliveries == []


@pytest.mark.parametrize(
    "url", ["https://example.com/hook", "http://10.0.0.8/hook", "ftp://127.0.0.1/hook"]
)
def test_webhook_endpoint_url_must_be_loopback_http(client: stripe.StripeClient, url: str) -> None:
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.webhook_endpoints.create(params={"url": url, "enabled_events": ["*"]})
    assert refused.value.code == "url_invalid"
    assert client.v1.webhook_endpoints.list().data == []


def test_webhook_endpoint_update_refuses_a_remote_url(
    client: stripe.StripeClient, receiver: Receiver
) -> None:
    endpoint = only_endpoint(client)
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.webhook_endpoints.update(endpoint.id, params={"url": "https://example.com/x"})
    assert refused.value.code == "url_invalid"
    assert client.v1.webhook_endpoints.retrieve(endpoint.id).url == receiver.url


def only_endpoint(client: stripe.StripeClient) -> stripe.WebhookEndpoint:
    found = client.v1.webhook_endpoints.list().data
    assert len(found) == 1
    return found[0]
