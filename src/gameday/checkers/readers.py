"""Reading the final state: the target's tables and the provider's PaymentIntents.

The database is read with plain SQL (``QUERIES``, one SELECT per table, rows converted by
column name) in one REPEATABLE READ transaction, so every table is seen at the same
instant: a payment confirmed between two SELECTs would otherwise look paid-but-unbooked.
A target with another schema passes its own SQL returning the same columns. Each table
sits in its own savepoint, so a table the target does not have costs that table only.

The provider is read with the official ``stripe`` SDK, so the same code reads the
emulator and a real Stripe test-mode account; intents are listed with their latest charge
expanded, because a refund shows on the charge, not on the intent.

Every read is bounded (``limit`` rows per source, a time limit for the database) and
never raises: what could not be read, or was cut at the limit, is an entry in
``FinalState.errors`` and the checkers that needed it answer UNKNOWN.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
import stripe
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool
from stripe.params import PaymentIntentListParams

from gameday.checkers.state import (
    TABLES,
    BookingRow,
    EventRow,
    FinalState,
    IntentRow,
    OutboxRow,
    PaymentRow,
    TransitionRow,
)

ROW_LIMIT = 200_000
QUERIES: Mapping[str, str] = {
    "bookings": "SELECT id, resource_id, user_id, starts_at, ends_at, status, hold_expires_at "
    "FROM bookings ORDER BY id LIMIT :limit",
    "payments": "SELECT id, booking_id, status, provider_intent_id, amount_cents, needs_refund, "
    "updated_at FROM payments ORDER BY id LIMIT :limit",
    "payment_transitions": "SELECT payment_id, from_status, to_status, source, at "
    "FROM payment_transitions ORDER BY id LIMIT :limit",
    "webhook_events": "SELECT id, type, status, attempts, deliveries "
    "FROM webhook_events ORDER BY id LIMIT :limit",
    "outbox": "SELECT id, kind, booking_id, dedup_key, status FROM outbox ORDER BY id LIMIT :limit",
}
"""One SELECT per table; ``:limit`` is bound to the row limit plus one (to see a cut)."""
_DRIVERS = {
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
    "mysql": "mysql+asyncmy",
    "mariadb": "mysql+asyncmy",
    "mysql+asyncmy": "mysql+asyncmy",
    "mariadb+asyncmy": "mysql+asyncmy",
}
_CONNECT_S, _STATEMENT_S = 10, 60


@dataclass(frozen=True)
class DatabaseRows:
    bookings: list[BookingRow] = field(default_factory=list)
    payments: list[PaymentRow] = field(default_factory=list)
    transitions: list[TransitionRow] = field(default_factory=list)
    events: list[EventRow] = field(default_factory=list)
    outbox: list[OutboxRow] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def async_database_url(url: str) -> sa.URL:
    """The async driver for the URLs people write (``postgresql://``, ``mysql://``)."""
    parsed = make_url(url)
    driver = _DRIVERS.get(parsed.drivername)
    if driver is None:
        raise ValueError(
            f"unsupported database {parsed.drivername!r}: use postgresql:// or mysql://"
        )
    return parsed.set(drivername=driver)


async def read_database(
    url: str, *, queries: Mapping[str, str] = QUERIES, limit: int = ROW_LIMIT,
    timeout_s: float = 120.0,
) -> DatabaseRows:  # fmt: skip
    """Every table's rows at one instant; what failed is in ``errors``, nothing raises."""
    found: dict[str, list[Any]] = {table: [] for table in TABLES}
    errors: list[str] = []
    try:
        target = async_database_url(url)
        engine = create_async_engine(
            target, poolclass=NullPool, isolation_level="REPEATABLE READ",
            connect_args=_connect_args(target.get_backend_name()),
        )  # fmt: skip
    except Exception as error:
        return DatabaseRows(errors=[f"database: {_reason(error)}"])
    try:
        async with asyncio.timeout(timeout_s), engine.connect() as conn, conn.begin():
            for table in TABLES:
                found[table] = await _read_table(conn, table, queries.get(table), limit, errors)
    except Exception as error:
        errors.append(f"database: {_reason(error)}")
    finally:
        await engine.dispose()
    return DatabaseRows(
        found["bookings"], found["payments"], found["payment_transitions"],
        found["webhook_events"], found["outbox"], errors,
    )  # fmt: skip


async def _read_table(
    conn: AsyncConnection, table: str, sql: str | None, limit: int, errors: list[str]
) -> list[Any]:
    if sql is None:
        errors.append(f"{table}: no query for this target")
        return []
    try:
        async with conn.begin_nested():
            rows = (await conn.execute(sa.text(sql), {"limit": limit + 1})).mappings().all()
        converted = [_CONVERT[table](row) for row in rows[:limit]]
    except Exception as error:
        errors.append(f"{table}: {_reason(error)}")
        return []
    if len(rows) > limit:
        errors.append(f"{table}: more than {limit} rows; only the first {limit} were read")
    return converted


def _connect_args(backend: str) -> dict[str, Any]:
    if backend == "postgresql":
        return {
            "timeout": _CONNECT_S,
            "command_timeout": _STATEMENT_S,
            "server_settings": {"application_name": "gameday-checkers"},
        }
    return {"connect_timeout": _CONNECT_S, "read_timeout": _STATEMENT_S}


def _reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:300]


def _utc(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise TypeError(f"not a datetime: {value!r}")
    # MariaDB's DATETIME comes back naive; the service stores UTC there.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _utc_or_none(value: Any) -> datetime | None:
    return None if value is None else _utc(value)


def _text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


_CONVERT: Mapping[str, Callable[[Any], Any]] = {
    "bookings": lambda m: BookingRow(
        int(m["id"]),
        int(m["resource_id"]),
        int(m["user_id"]),
        _utc(m["starts_at"]),
        _utc(m["ends_at"]),
        str(m["status"]),
        _utc_or_none(m.get("hold_expires_at")),
    ),
    "payments": lambda m: PaymentRow(
        int(m["id"]),
        int(m["booking_id"]),
        str(m["status"]),
        _text_or_none(m["provider_intent_id"]),
        int(m["amount_cents"]),
        bool(m.get("needs_refund")),
        _utc_or_none(m.get("updated_at")),
    ),
    "payment_transitions": lambda m: TransitionRow(
        int(m["payment_id"]),
        str(m["from_status"]),
        str(m["to_status"]),
        str(m["source"]),
        _utc_or_none(m.get("at")),
    ),
    "webhook_events": lambda m: EventRow(
        str(m["id"]),
        str(m["type"]),
        str(m["status"]),
        int(m.get("attempts") or 0),
        int(m.get("deliveries") or 0),
    ),
    "outbox": lambda m: OutboxRow(
        int(m["id"]),
        str(m["kind"]),
        None if m["booking_id"] is None else int(m["booking_id"]),
        _text_or_none(m.get("dedup_key")),
        str(m.get("status") or ""),
    ),
}


def read_provider(
    url: str, api_key: str, *, limit: int = ROW_LIMIT, created_since: int | None = None
) -> list[IntentRow]:
    """Every PaymentIntent (newest first, at most ``limit``); ``created_since`` (unix time)
    leaves out earlier runs' intents on a shared test-mode account."""
    return _list_intents(url, api_key, limit, created_since)[0]


def _list_intents(
    url: str, api_key: str, limit: int, created_since: int | None
) -> tuple[list[IntentRow], bool]:
    """The intents, and whether there were more than ``limit``."""
    client = stripe.StripeClient(api_key, base_addresses={"api": url}, max_network_retries=2)
    params: PaymentIntentListParams = {"limit": 100, "expand": ["data.latest_charge"]}
    if created_since is not None:
        params["created"] = {"gte": created_since}
    pages = client.v1.payment_intents.list(params=params).auto_paging_iter()
    rows = [_intent(pi) for pi in itertools.islice(pages, limit + 1)]
    return rows[:limit], len(rows) > limit


def _intent(pi: stripe.PaymentIntent) -> IntentRow:
    charge = pi.latest_charge
    refunded_cents, refunded = 0, False
    if isinstance(charge, stripe.Charge):
        refunded_cents, refunded = int(charge.amount_refunded or 0), bool(charge.refunded)
    metadata = {str(k): str(v) for k, v in (pi.metadata.to_dict() if pi.metadata else {}).items()}
    return IntentRow(
        id=pi.id, status=str(pi.status), amount=int(pi.amount), amount_refunded=refunded_cents,
        refunded=refunded, metadata=metadata, created=int(pi.created),
        currency=str(pi.currency or ""),
    )  # fmt: skip


async def read_state(
    database_url: str | None, provider_url: str | None, api_key: str, *,
    queries: Mapping[str, str] = QUERIES, limit: int = ROW_LIMIT,
    provider_since: int | None = None,
) -> FinalState:  # fmt: skip
    """Both sides, read concurrently; a side not given or not readable is an error entry."""
    read_at = datetime.now(UTC)
    errors: list[str] = []

    async def database() -> DatabaseRows:
        if database_url is None:
            return DatabaseRows(errors=["database: no database URL given"])
        return await read_database(database_url, queries=queries, limit=limit)

    async def provider() -> list[IntentRow]:
        if provider_url is None:
            errors.append("provider: no provider URL given")
            return []
        try:
            found, cut = await asyncio.to_thread(
                _list_intents, provider_url, api_key, limit, provider_since
            )
        except Exception as error:
            errors.append(f"provider: {_reason(error)}")
            return []
        if cut:
            errors.append(f"provider: more than {limit} intents; only the newest were read")
        return found

    rows, intents = await asyncio.gather(database(), provider())
    return FinalState(
        rows.bookings, rows.payments, rows.transitions, rows.events, rows.outbox, intents,
        read_at=read_at, errors=rows.errors + errors,
    )  # fmt: skip
