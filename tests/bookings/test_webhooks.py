"""Safeguard 3, webhooks: signature and timestamp checked with the Stripe SDK, events
deduplicated by id, applied by a monotonic state machine, failures kept in a dead-letter
table for replay, the confirmation email sent once — proven with real events from the
emulator, real PostgreSQL and MariaDB and a real SMTP sink, and shown to fail on the
unsafe variant.

Most tests *pause* the emulator's own deliveries by disabling the stack's endpoint through
the Stripe API (``disabled: true``): the events still happen at the provider and are read
back through its Events API, but the only deliveries the service sees are the test's own,
signed with the endpoint's secret as Stripe signs them. That is what makes counts such as
"20 deliveries, one state change" exact. The payments use the 3-D Secure test card, so the
synchronous confirm leaves them ``requires_action`` and the challenge (ended with the
emulator's test control) happens at the provider only: the webhook is what confirms.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import hmac
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from stripe_emulator import EmulatorServer
from tests.bookings.support import (
    Call,
    ScratchDatabase,
    SmtpSink,
    Stack,
    World,
    burst,
    make_world,
    slot,
)

THREE_DS = "4000000000003220"
PATH = "/webhooks/stripe"
REPLAYS = 20


# ---------------------------------------------------------------- helpers


@dataclass(frozen=True)
class Challenged:
    """A payment our confirm left at ``requires_action``, its challenge passed at Stripe."""

    booking_id: int
    payment_id: int
    intent_id: str


def pause_deliveries(stack: Stack) -> None:
    """Disable the stack's endpoint at the emulator: from now on it delivers nothing."""
    url = f"{stack.url}{PATH}"
    mine = [e for e in stack.provider.v1.webhook_endpoints.list().data if e.url == url]
    assert len(mine) == 1
    stack.provider.v1.webhook_endpoints.update(mine[0].id, params={"disabled": True})


def challenged_payment(stack: Stack, world: World) -> Challenged:
    """Hold, pay with the 3-D Secure card (202 ``requires_action``), pass the challenge."""
    user = world.customers[0]
    held = stack.hold(user, world.resource, slot())
    assert held.status_code == 201, held.text
    paid = stack.pay(user, held.json()["id"], f"pay-{uuid.uuid4()}", card=THREE_DS)
    assert paid.status_code == 202, paid.text
    body = paid.json()
    assert (body["status"], body["booking_status"]) == ("requires_action", "held")
    stack.emulator.authenticate(body["payment_intent"])
    return Challenged(body["booking_id"], body["payment_id"], body["payment_intent"])


def provider_events(stack: Stack, intent_id: str) -> list[dict[str, Any]]:
    """Every event the provider emitted about one intent (or its charges), newest first
    (the Events API's order)."""
    found = []
    for event in stack.provider.v1.events.list(params={"limit": 100}).data:
        raw = event.to_dict(for_json=True)
        obj = raw["data"]["object"]
        if intent_id in (obj.get("id"), obj.get("payment_intent")):
            found.append(raw)
    return found


def provider_event(stack: Stack, kind: str, intent_id: str) -> dict[str, Any]:
    found = [e for e in provider_events(stack, intent_id) if e["type"] == kind]
    assert len(found) == 1, [e["type"] for e in provider_events(stack, intent_id)]
    return found[0]


def encoded(event: Any) -> bytes:
    """The exact bytes httpx sends for ``json=event`` (what ``burst`` sends)."""
    return httpx.Request("POST", "http://127.0.0.1/", json=event).content


def signature(secret: str, payload: bytes, at: int | None = None) -> str:
    """``Stripe-Signature`` as Stripe computes it: HMAC-SHA256 of ``"<t>.<payload>"``."""
    t = int(time.time()) if at is None else at
    digest = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def signed_headers(stack: Stack, event: Any) -> dict[str, str]:
    return {"Stripe-Signature": signature(stack.settings.stripe_webhook_secret, encoded(event))}


def post(stack: Stack, payload: bytes, signature_header: str) -> httpx.Response:
    headers = {"Stripe-Signature": signature_header, "Content-Type": "application/json"}
    return stack.http.post(PATH, content=payload, headers=headers)


def deliver(stack: Stack, event: Any) -> httpx.Response:
    """One delivery of ``event``, signed with the endpoint's secret."""
    secret = stack.settings.stripe_webhook_secret
    return post(stack, encoded(event), signature(secret, encoded(event)))


def applied(db: ScratchDatabase, event_id: str) -> list[tuple[str, str]]:
    """The payment transitions this event caused (the audit of every application)."""
    rows = db.query(
        "SELECT from_status, to_status FROM payment_transitions WHERE source = :s ORDER BY id",
        s=f"event:{event_id}",
    )
    return [(r[0], r[1]) for r in rows]


def event_row(db: ScratchDatabase, event_id: str) -> Any:
    rows = db.query(
        "SELECT status, attempts, deliveries, last_error FROM webhook_events WHERE id = :i",
        i=event_id,
    )
    return rows[0] if rows else None


def statuses(db: ScratchDatabase, c: Challenged) -> tuple[str, str]:
    payment = db.scalar("SELECT status FROM payments WHERE id = :i", i=c.payment_id)
    booking = db.scalar("SELECT status FROM bookings WHERE id = :i", i=c.booking_id)
    return str(payment), str(booking)


def emails_once_drained(stack: Stack, db: ScratchDatabase, booking_id: int) -> int:
    """Confirmation emails of a booking at the SMTP sink once the outbox has nothing left
    to send (a sent row's message is at the sink before the row is marked)."""
    assert stack.wait_for(
        lambda: db.scalar("SELECT count(*) FROM outbox WHERE status = 'pending'") == 0
    )
    return stack.smtp.subjects().count(f"Booking #{booking_id} confirmed")


def outbox_rows(db: ScratchDatabase, booking_id: int) -> int:
    return int(db.scalar("SELECT count(*) FROM outbox WHERE booking_id = :b", b=booking_id))


@dataclass(frozen=True)
class Storm:
    outcomes: collections.Counter[str]
    transitions: list[tuple[str, str]]
    emails: int
    outbox: int


def replay_storm(stacks: list[Stack], db: ScratchDatabase, c: Challenged, event: Any) -> Storm:
    """The same signed event delivered REPLAYS times at one instant, spread over the stacks."""
    stack = stacks[0]
    call = Call("POST", PATH, signed_headers(stack, event), event)
    answers = burst([s.url for s in stacks], [call] * REPLAYS)
    outcomes = collections.Counter(
        r.json()["outcome"] if r.status_code == 200 else str(r.status_code) for r in answers
    )
    return Storm(
        outcomes,
        applied(db, event["id"]),
        emails_once_drained(stack, db, c.booking_id),
        outbox_rows(db, c.booking_id),
    )


@pytest.fixture
def pair(
    db: ScratchDatabase, emulator: EmulatorServer, smtp: SmtpSink, stack: Stack
) -> Iterator[list[Stack]]:
    """Two instances of the service over one database, as two workers: each with its own
    event loop, connection pool and caches, sharing only the database and the endpoint's
    secret. (Threads rather than ``bookings serve`` processes: starting processes costs
    seconds on a loaded machine, and what must hold the line here is the database.)"""
    secret = stack.settings.stripe_webhook_secret
    with Stack(db, emulator, smtp, stripe_webhook_secret=secret) as second:
        yield [stack, second]


# ---------------------------------------------------------------- dedup, exactly once


def test_one_event_delivered_20_times_at_once_applies_once(
    db: ScratchDatabase, pair: list[Stack], world: World
) -> None:
    """20 concurrent deliveries of the real ``payment_intent.succeeded`` over two service
    instances: one state change, one confirmation email, every delivery acknowledged."""
    stack = pair[0]
    for each in pair:
        pause_deliveries(each)
    c = challenged_payment(stack, world)
    event = provider_event(stack, "payment_intent.succeeded", c.intent_id)
    assert statuses(db, c) == ("requires_action", "held")

    storm = replay_storm(pair, db, c, event)

    assert storm.outcomes["processed"] == 1, storm.outcomes
    assert set(storm.outcomes) <= {"processed", "duplicate", "in_progress"}, storm.outcomes
    assert storm.transitions == [("requires_action", "succeeded")]
    assert statuses(db, c) == ("succeeded", "confirmed")
    assert (storm.outbox, storm.emails) == (1, 1)
    assert tuple(event_row(db, event["id"])) == ("processed", 1, REPLAYS, None)


@pytest.mark.parametrize("fresh_db", ["postgresql", "mariadb"], indirect=True)
def test_the_unsafe_variant_is_caught_applying_duplicates(
    fresh_db: ScratchDatabase, emulator: EmulatorServer, smtp: SmtpSink
) -> None:
    """The same storm against the variant without dedup: the checks above must fail. (One
    instance is enough: without dedup even one-after-another repeats are applied.)"""
    world = make_world(fresh_db)
    with Stack(fresh_db, emulator, smtp, unsafe_no_safeguards=True) as stack:
        assert stack.http.get("/health/full").json()["unsafe_variant"] is True
        pause_deliveries(stack)
        c = challenged_payment(stack, world)
        event = provider_event(stack, "payment_intent.succeeded", c.intent_id)
        storm = replay_storm([stack], fresh_db, c, event)
    assert storm.outcomes["processed"] > 1, storm.outcomes
    assert len(storm.transitions) > 1, storm.transitions
    assert storm.outbox > 1
    assert storm.emails > 1


def test_the_providers_own_duplicate_deliveries_send_one_email(
    pg: ScratchDatabase, stack: Stack, world: World
) -> None:
    """The emulator's at-least-once delivery with every delivery sent twice: one email."""
    stack.emulator.set_faults(webhook_duplicate_rate=1.0)
    c = challenged_payment(stack, world)
    event = provider_event(stack, "payment_intent.succeeded", c.intent_id)

    def delivered() -> list[dict[str, Any]]:
        return [d for d in stack.emulator.deliveries() if d["event"] == event["id"]]

    assert stack.wait_for(lambda: len(delivered()) == 2)
    assert [(d["status"], d["duplicate"]) for d in delivered()] == [(200, False), (200, True)]
    assert stack.wait_for(lambda: statuses(pg, c) == ("succeeded", "confirmed"))
    assert applied(pg, event["id"]) == [("requires_action", "succeeded")]
    assert emails_once_drained(stack, pg, c.booking_id) == 1
    assert outbox_rows(pg, c.booking_id) == 1
    assert tuple(event_row(pg, event["id"])) == ("processed", 1, 2, None)


def test_the_dedup_flag_flips_at_runtime(pg: ScratchDatabase, stack: Stack, world: World) -> None:
    """WEBHOOK_DEDUP_ENABLED off: a repeat is processed again (no longer a ``duplicate``)
    and only the monotonic state machine keeps it harmless; back on, the next repeat is a
    ``duplicate`` again. No restart in between."""
    pause_deliveries(stack)
    c = challenged_payment(stack, world)
    event = provider_event(stack, "payment_intent.succeeded", c.intent_id)
    outcomes = [deliver(stack, event).json()["outcome"]]
    for enabled in (False, True):
        flipped = stack.http.put(
            "/admin/flags/WEBHOOK_DEDUP_ENABLED", headers=stack.admin, json={"enabled": enabled}
        )
        assert flipped.status_code == 200, flipped.text
        assert flipped.json()["WEBHOOK_DEDUP_ENABLED"] is enabled
        outcomes.append(deliver(stack, event).json()["outcome"])
    assert outcomes == ["processed", "processed", "duplicate"]
    assert applied(pg, event["id"]) == [("requires_action", "succeeded")]
    assert emails_once_drained(stack, pg, c.booking_id) == 1
    assert outbox_rows(pg, c.booking_id) == 1


# ---------------------------------------------------------------- order


def test_events_newest_first_never_regress_the_payment(
    db: ScratchDatabase, stack: Stack, world: World
) -> None:
    """Every event of the intent delivered in reverse: ``succeeded`` first confirms, the
    older ``requires_action`` and ``created`` that follow change nothing."""
    pause_deliveries(stack)
    c = challenged_payment(stack, world)
    events = provider_events(stack, c.intent_id)
    kinds = [e["type"] for e in events]
    assert kinds.index("payment_intent.succeeded") < kinds.index("payment_intent.requires_action")
    for event in events:
        answer = deliver(stack, event)
        assert answer.status_code == 200, answer.text
        if event["type"] == "payment_intent.succeeded":
            assert statuses(db, c) == ("succeeded", "confirmed")
    assert statuses(db, c) == ("succeeded", "confirmed")
    sources = db.query(
        "SELECT source, to_status FROM payment_transitions WHERE payment_id = :p ORDER BY id",
        p=c.payment_id,
    )
    assert [tuple(r) for r in sources] == [
        (f"confirm:{c.intent_id}", "requires_action"),
        (f"event:{events[kinds.index('payment_intent.succeeded')]['id']}", "succeeded"),
    ]
    assert emails_once_drained(stack, db, c.booking_id) == 1


def test_a_refund_reported_before_the_success_stays_refunded(
    db: ScratchDatabase, stack: Stack, world: World
) -> None:
    """``charge.refunded`` arrives before ``payment_intent.succeeded``: refunded, never
    back to succeeded, the hold released (canceled, its range free again), the booking
    never confirmed and no confirmation sent."""
    pause_deliveries(stack)
    c = challenged_payment(stack, world)
    stack.provider.v1.refunds.create(params={"payment_intent": c.intent_id})
    refunded = provider_event(stack, "charge.refunded", c.intent_id)
    succeeded = provider_event(stack, "payment_intent.succeeded", c.intent_id)
    assert succeeded["created"] <= refunded["created"]

    assert deliver(stack, refunded).json()["outcome"] == "processed"
    assert statuses(db, c) == ("refunded", "canceled")
    assert deliver(stack, succeeded).json()["outcome"] == "processed"
    assert statuses(db, c) == ("refunded", "canceled")
    assert applied(db, refunded["id"]) == [("requires_action", "refunded")]
    assert applied(db, succeeded["id"]) == []
    assert outbox_rows(db, c.booking_id) == 0
    assert stack.smtp.subjects() == []


# ---------------------------------------------------------------- verification


def test_forged_stale_and_garbage_deliveries_are_400_and_change_nothing(
    pg: ScratchDatabase, stack: Stack, world: World
) -> None:
    """Each bad delivery carries the real ``succeeded`` event that would confirm the
    booking; the last, correctly signed one shows it would have."""
    pause_deliveries(stack)
    c = challenged_payment(stack, world)
    event = provider_event(stack, "payment_intent.succeeded", c.intent_id)
    secret, payload = stack.settings.stripe_webhook_secret, encoded(event)
    tolerance = stack.settings.webhook_tolerance_s
    other = encoded({**event, "id": "evt_tampered"})
    garbage = b"not json at all {"
    not_event = b'{"hello": "world"}'
    cases: list[tuple[str, bytes, str, str]] = [
        ("forged", payload, signature("whsec_forged", payload), "invalid_signature"),
        ("tampered", payload, signature(secret, other), "invalid_signature"),
        ("unsigned", payload, "", "invalid_signature"),
        ("malformed header", payload, "v1=deadbeef", "invalid_signature"),
        ("stale", payload, signature(secret, payload, int(time.time()) - tolerance - 60),
         "stale_signature"),
        ("garbage", garbage, signature(secret, garbage), "invalid_payload"),
        ("not an event", not_event, signature(secret, not_event), "invalid_payload"),
    ]  # fmt: skip
    for name, body, header, code in cases:
        answer = post(stack, body, header)
        assert (answer.status_code, answer.json()["error"]) == (400, code), (name, answer.text)
    assert pg.scalar("SELECT count(*) FROM webhook_events") == 0
    assert pg.scalar("SELECT count(*) FROM payment_transitions WHERE source LIKE 'event:%'") == 0
    assert statuses(pg, c) == ("requires_action", "held")
    metrics = stack.http.get("/metrics").text
    assert f'bookings_webhooks_total{{outcome="rejected"}} {float(len(cases))}' in metrics

    answer = deliver(stack, event)
    assert answer.json()["outcome"] == "processed"
    assert statuses(pg, c) == ("succeeded", "confirmed")


# ---------------------------------------------------------------- dead letter and replay


async def _deliver_while_locked(
    db: ScratchDatabase, stack: Stack, payment_id: int, event: Any
) -> httpx.Response:
    """Deliver ``event`` while another transaction holds the payment row's lock."""
    engine = db.engine()
    try:
        async with engine.connect() as conn:
            await conn.execute(
                sa.text("SELECT id FROM payments WHERE id = :i FOR UPDATE"), {"i": payment_id}
            )
            answer = await asyncio.to_thread(deliver, stack, event)
            await conn.rollback()
    finally:
        await engine.dispose()
    return answer


# Sessions of this database stuck on a row lock. (MariaDB's innodb_trx does not list a
# READ COMMITTED reader waiting in the optimizer's const-row read; but with the booking row
# held by the test, a running locking read of bookings that skips nothing is waiting.)
LOCK_WAITERS = {
    "postgresql": "SELECT count(*) FROM pg_stat_activity"
    " WHERE datname = current_database() AND wait_event_type = 'Lock'",
    "mariadb": "SELECT count(*) FROM information_schema.processlist WHERE db = DATABASE()"
    " AND id <> CONNECTION_ID() AND command = 'Query' AND info LIKE '%FROM bookings%FOR UPDATE'",
}


async def _payment_lockable_while_webhook_waits(
    db: ScratchDatabase, stack: Stack, c: Challenged, event: Any
) -> tuple[httpx.Response, bool]:
    """Lock the booking row, deliver ``event``, and once the delivery waits for that lock,
    try the payment row with NOWAIT: free unless the webhook locked it before the booking."""
    engine, watcher = db.engine(), db.engine()
    try:
        async with engine.connect() as conn, watcher.connect() as watch:
            await conn.execute(
                sa.text("SELECT id FROM bookings WHERE id = :i FOR UPDATE"), {"i": c.booking_id}
            )
            delivery = asyncio.ensure_future(asyncio.to_thread(deliver, stack, event))
            for _ in range(200):
                if (await watch.execute(sa.text(LOCK_WAITERS[db.dialect]))).scalar():
                    break
                await asyncio.sleep(0.02)
            else:
                raise AssertionError(f"the delivery never waited: {(await delivery).text}")
            try:
                await conn.execute(
                    sa.text("SELECT id FROM payments WHERE id = :i FOR UPDATE NOWAIT"),
                    {"i": c.payment_id},
                )
                payment_free = True
            except sa.exc.DBAPIError:
                payment_free = False
            await conn.rollback()
            return await delivery, payment_free
    finally:
        await engine.dispose()
        await watcher.dispose()


@pytest.fixture
def patient(
    request: pytest.FixtureRequest, emulator: EmulatorServer, smtp: SmtpSink
) -> Iterator[Stack]:
    """The service waiting long for row locks, so a test can watch it wait (the request
    deadline too: on a loaded machine the watcher may need more than the default 2 s)."""
    db = request.getfixturevalue("db")
    with Stack(
        db, emulator, smtp, db_lock_timeout_s=30, db_statement_timeout_s=40,
        request_deadline_s=45,
    ) as running:  # fmt: skip
        yield running


def test_a_webhook_locks_booking_before_payment(
    db: ScratchDatabase, patient: Stack, world: World
) -> None:
    """The lock order of settlement (booking, then payment — as the pay path takes them):
    a webhook waiting for a booking that a payment attempt has locked must not sit on the
    payment row meanwhile, or the two deadlock."""
    stack = patient
    pause_deliveries(stack)
    c = challenged_payment(stack, world)
    event = provider_event(stack, "payment_intent.succeeded", c.intent_id)
    answer, payment_free = asyncio.run(_payment_lockable_while_webhook_waits(db, stack, c, event))
    assert payment_free, "the webhook locked the payment row before the booking row"
    assert answer.json()["outcome"] == "processed", answer.text
    assert statuses(db, c) == ("succeeded", "confirmed")


@pytest.fixture
def impatient(
    request: pytest.FixtureRequest, emulator: EmulatorServer, smtp: SmtpSink
) -> Iterator[Stack]:
    """The service waiting at most one second for a row lock."""
    db = request.getfixturevalue("db")
    with Stack(db, emulator, smtp, db_statement_timeout_s=1.0) as running:
        yield running


def test_a_failed_event_is_dead_lettered_and_replayed_once(
    db: ScratchDatabase, impatient: Stack, world: World
) -> None:
    """The payment row is locked by another transaction longer than the service waits:
    500 (so Stripe retries), the row kept as ``failed`` with the error; an admin replay
    after the lock is gone applies it once, a second replay changes nothing."""
    stack = impatient
    pause_deliveries(stack)
    c = challenged_payment(stack, world)
    event = provider_event(stack, "payment_intent.succeeded", c.intent_id)

    answer = asyncio.run(_deliver_while_locked(db, stack, c.payment_id, event))
    assert (answer.status_code, answer.json()["error"]) == (500, "processing_failed")
    status, attempts, _, last_error = event_row(db, event["id"])
    assert (status, attempts) == ("failed", 1)
    assert last_error
    assert statuses(db, c) == ("requires_action", "held")
    assert applied(db, event["id"]) == []

    listed = stack.http.get("/admin/webhooks/failed", headers=stack.admin)
    assert listed.status_code == 200
    assert [(e["id"], e["attempts"]) for e in listed.json()] == [(event["id"], 1)]
    assert listed.json()[0]["last_error"] == last_error

    replay = f"/admin/webhooks/{event['id']}/replay"
    first = stack.http.post(replay, headers=stack.admin)
    again = stack.http.post(replay, headers=stack.admin)
    assert (first.status_code, first.json()["outcome"]) == (200, "processed"), first.text
    assert (again.status_code, again.json()["outcome"]) == (200, "duplicate"), again.text
    assert statuses(db, c) == ("succeeded", "confirmed")
    assert applied(db, event["id"]) == [("requires_action", "succeeded")]
    assert tuple(event_row(db, event["id"]))[:2] == ("processed", 2)
    assert stack.http.get("/admin/webhooks/failed", headers=stack.admin).json() == []
    assert emails_once_drained(stack, db, c.booking_id) == 1
    audit = db.query("SELECT actor, subject FROM audit_log WHERE action = 'replay_webhook'")
    assert [tuple(r) for r in audit] == [("admin:0", f"event:{event['id']}")] * 2


def test_the_dead_letter_endpoints_need_the_admin_token(
    pg: ScratchDatabase, stack: Stack, world: World
) -> None:
    customer = stack.headers(world.customers[0])
    for method, path in [("GET", "/admin/webhooks/failed"), ("POST", "/admin/webhooks/e/replay")]:
        anonymous = stack.http.request(method, path)
        wrong = stack.http.request(method, path, headers={"X-Admin-Token": "guess"})
        not_admin = stack.http.request(method, path, headers=customer)
        assert (anonymous.status_code, anonymous.json()["error"]) == (401, "not_authenticated")
        assert (wrong.status_code, wrong.json()["error"]) == (403, "admin_required")
        assert (not_admin.status_code, not_admin.json()["error"]) == (403, "admin_required")
    unknown = stack.http.post("/admin/webhooks/evt_unknown/replay", headers=stack.admin)
    assert (unknown.status_code, unknown.json()["error"]) == (404, "event_not_found")
