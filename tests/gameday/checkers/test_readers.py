"""The readers against real servers: a scratch database migrated by ``bookings migrate``
(PostgreSQL and MariaDB, as the service runs on both) and the provider emulator."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import stripe
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from gameday.checkers import FinalState, Verdict, read_database, read_provider, read_state, run_all
from gameday.checkers.readers import QUERIES, async_database_url
from stripe_emulator import EmulatorServer

SERVERS = {
    "postgresql": "postgresql://postgres@127.0.0.1:5432/postgres",
    "mariadb": "mysql://root@127.0.0.1:3306/mysql",
}
BOOKINGS_CLI = Path(sys.executable).with_name("bookings")
KEY = "sk_test_gameday_checkers"
AT = datetime(2026, 6, 1, 10, tzinfo=UTC)


async def _execute(
    url: str, *statements: tuple[str, dict[str, Any]], autocommit: bool = False
) -> None:
    engine = create_async_engine(
        async_database_url(url),
        poolclass=NullPool,
        isolation_level="AUTOCOMMIT" if autocommit else "READ COMMITTED",
    )
    try:
        async with engine.begin() as conn:
            for sql, params in statements:
                await conn.execute(sa.text(sql), params)
    finally:
        await engine.dispose()


@pytest.fixture(params=sorted(SERVERS))
def database(request: pytest.FixtureRequest) -> Iterator[str]:
    """A migrated, empty bookings database of its own, dropped afterwards."""
    server = SERVERS[request.param]
    name = f"gd_checkers_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    url = server.rsplit("/", 1)[0] + "/" + name
    asyncio.run(_execute(server, (f"CREATE DATABASE {name}", {}), autocommit=True))
    try:
        done = subprocess.run(  # noqa: S603 - our own CLI from our own venv
            [str(BOOKINGS_CLI), "migrate"],
            env={**os.environ, "BOOKINGS_DATABASE_URL": url},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        yield url
    finally:
        force = " WITH (FORCE)" if request.param == "postgresql" else ""
        asyncio.run(
            _execute(server, (f"DROP DATABASE IF EXISTS {name}{force}", {}), autocommit=True)
        )


def _insert(table: str, **row: Any) -> tuple[str, dict[str, Any]]:
    names = ", ".join(row)
    marks = ", ".join(f":{name}" for name in row)
    return f"INSERT INTO {table} ({names}) VALUES ({marks})", row  # noqa: S608 - fixed names


def _rows(url: str, intent: str = "pi_1") -> list[tuple[str, dict[str, Any]]]:
    at = AT if url.startswith("postgresql") else AT.replace(tzinfo=None)  # MariaDB: naive UTC
    hour = timedelta(hours=1)
    stamps = {"created_at": at, "updated_at": at}
    booking = {"resource_id": 1, "user_id": 1, "amount_cents": 5000, "currency": "usd",
               "hold_expires_at": at, **stamps}  # fmt: skip
    return [
        _insert("users", id=1, email="a@x.test", password_hash="h", role="customer", created_at=at),
        _insert("resources", id=1, kind="guide", name="G", hourly_rate_cents=5000, created_at=at),
        _insert("bookings", id=1, starts_at=at, ends_at=at + hour, status="confirmed", **booking),
        _insert(
            "bookings", id=2, starts_at=at + hour, ends_at=at + 2 * hour, status="held", **booking
        ),
        _insert(
            "payments",
            id=10,
            booking_id=1,
            provider_intent_id=intent,
            status="succeeded",
            amount_cents=5000,
            currency="usd",
            needs_refund=False,
            **stamps,
        ),
        _insert(
            "payment_transitions",
            payment_id=10,
            from_status="requires_payment_method",
            to_status="succeeded",
            source="event:evt_1",
            at=at,
        ),
        _insert(
            "webhook_events",
            id="evt_1",
            type="payment_intent.succeeded",
            status="processed",
            attempts=1,
            deliveries=3,
            payload="{}",
            received_at=at,
        ),
        _insert(
            "outbox",
            kind="booking_confirmed",
            dedup_key="booking-confirmed-1",
            booking_id=1,
            recipient="a@x.test",
            subject="s",
            body="b",
            status="sent",
            attempts=1,
            next_attempt_at=at,
            created_at=at,
        ),
    ]


def test_read_database_returns_every_table_as_rows(database: str) -> None:
    asyncio.run(_execute(database, *_rows(database)))
    rows = asyncio.run(read_database(database))
    assert rows.errors == []
    assert [(b.id, b.status, b.starts_at, b.ends_at - b.starts_at) for b in rows.bookings] == [
        (1, "confirmed", AT, timedelta(hours=1)),
        (2, "held", AT + timedelta(hours=1), timedelta(hours=1)),
    ]
    assert rows.bookings[0].starts_at.tzinfo is UTC
    [payment] = rows.payments
    assert (payment.id, payment.booking_id, payment.status, payment.provider_intent_id) == (
        10,
        1,
        "succeeded",
        "pi_1",
    )
    assert (payment.needs_refund, payment.updated_at) == (False, AT)
    assert [(t.payment_id, t.source) for t in rows.transitions] == [(10, "event:evt_1")]
    assert [(e.id, e.deliveries) for e in rows.events] == [("evt_1", 3)]
    assert [(o.kind, o.booking_id, o.dedup_key, o.status) for o in rows.outbox] == [
        ("booking_confirmed", 1, "booking-confirmed-1", "sent")
    ]


def test_a_cut_and_a_missing_table_are_errors_of_their_own(database: str) -> None:
    asyncio.run(_execute(database, *_rows(database)))
    queries = {**QUERIES, "outbox": "SELECT id, kind, booking_id FROM emails LIMIT :limit"}
    rows = asyncio.run(read_database(database, queries=queries, limit=1))
    assert [b.id for b in rows.bookings] == [1]
    assert [e.split(":")[0] for e in rows.errors] == ["bookings", "outbox"]
    assert "more than 1 rows" in rows.errors[0]
    assert [p.id for p in rows.payments] == [10]  # the failed table cost nobody else


def test_an_unreachable_database_is_an_error_never_a_raise() -> None:
    rows = asyncio.run(read_database("postgresql://postgres@127.0.0.1:1/nothing", timeout_s=10))
    assert len(rows.errors) == 1
    assert rows.errors[0].startswith("database: ")
    assert asyncio.run(read_database("sqlite:///x.db")).errors[0].startswith("database: ValueError")


def _charge(
    client: stripe.StripeClient, booking: str | None, amount: int = 5000
) -> stripe.PaymentIntent:
    metadata = {"booking_id": booking} if booking else {}
    return client.v1.payment_intents.create(
        params={
            "amount": amount,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "confirm": True,
            "metadata": metadata,
        }
    )


def test_read_provider_reports_status_refunds_and_metadata(emulator: EmulatorServer) -> None:
    client = stripe.StripeClient(KEY, base_addresses={"api": emulator.url})
    paid, refunded = _charge(client, "7"), _charge(client, "8", 4000)
    client.v1.refunds.create(params={"payment_intent": refunded.id, "amount": 1000})
    open_intent = client.v1.payment_intents.create(params={"amount": 700, "currency": "usd"})
    intents = {i.id: i for i in read_provider(emulator.url, KEY)}
    assert set(intents) == {paid.id, refunded.id, open_intent.id}
    assert (
        intents[paid.id].status,
        intents[paid.id].booking_id,
        intents[paid.id].amount_refunded,
    ) == ("succeeded", 7, 0)
    assert (intents[refunded.id].amount_refunded, intents[refunded.id].refunded) == (1000, False)
    assert (intents[open_intent.id].status, intents[open_intent.id].booking_id) == (
        "requires_payment_method",
        None,
    )
    assert len(read_provider(emulator.url, KEY, limit=2)) == 2


def test_read_state_then_the_checkers_end_to_end(database: str, emulator: EmulatorServer) -> None:
    client = stripe.StripeClient(KEY, base_addresses={"api": emulator.url})
    intent = _charge(client, "1")
    asyncio.run(_execute(database, *_rows(database, intent.id)))
    state = asyncio.run(read_state(database, emulator.url, KEY))
    assert state.errors == []
    assert len(state.intents) == 1
    verdicts = {r.name: r.verdict for r in run_all([], state)}
    assert verdicts == dict.fromkeys(verdicts, Verdict.PASS), [
        r.summary for r in run_all([], state)
    ]
    _charge(client, "1")  # a double charge of booking 1
    cut = asyncio.run(read_state(database, emulator.url, KEY, limit=1))
    assert any(e.startswith("provider: more than 1") for e in cut.errors)
    again = asyncio.run(read_state(database, emulator.url, KEY))
    assert {r.name: r.verdict for r in run_all([], again)}["no_duplicate_charge"] is Verdict.FAIL


def test_nothing_given_is_unknown_everywhere() -> None:
    state = asyncio.run(read_state(None, None, KEY))
    assert isinstance(state, FinalState)
    assert {e.split(":")[0] for e in state.errors} == {"database", "provider"}
    assert {r.verdict for r in run_all([], state) if r.name != "deterministic_retries"} == {
        Verdict.UNKNOWN
    }
