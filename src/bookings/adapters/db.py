"""The database: engine, connection settings for trouble, and one transaction helper.

Every query runs inside ``Database.transaction()``, which is where database trouble turns
into ``DbUnavailable`` (a fast 503 with Retry-After) and feeds the breaker, and where
deadlocks and lock timeouts become ``DbBusy`` (also 503, never a 500; callers that can
retry a transaction catch it). While the
breaker is open a request fails in microseconds instead of waiting out connect timeouts,
so a database outage cannot fill the workers with hung requests; the first trial after
``db_breaker_reset_s`` finds out whether the database is back, and the pool's pre-ping
replaces the dead connections, so recovery needs no restart.

Public requests (customers' and the provider's webhooks, marked by the request middleware
with :func:`public_lane`) share all but ``db_pool_reserved`` of the pool's connections.
The reserve is for admin calls, health checks and background jobs (hold expiry, the mail
outbox), so that during a checkout or webhook storm the on-call can still run the runbooks
and readiness still tells the truth. Past the share a request waits up to the checkout
bound, then is answered 503 ``db_busy`` (webhooks are retried by the provider anyway).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from bookings.adapters.breaker import CircuitBreaker
from bookings.errors import DbBusy, DbSaturated, DbUnavailable, InvalidRequest
from bookings.settings import Settings

_DRIVERS = {
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
    "mysql": "mysql+asyncmy",
    "mariadb": "mysql+asyncmy",
    "mysql+asyncmy": "mysql+asyncmy",
    "mariadb+asyncmy": "mysql+asyncmy",
}
# Server error codes that mean "try the transaction again": PostgreSQL's deadlock and
# serialization failures, MariaDB's deadlock.
_RETRYABLE_SQLSTATES = {"40P01", "40001"}
_RETRYABLE_MYSQL = {1213}
_MYSQL_LOCK_WAIT_TIMEOUT = 1205
_PG_LOCK_NOT_AVAILABLE = "55P03"
# PostgreSQL's statement_timeout cancels with query_canceled, which SQLAlchemy raises as a
# bare DBAPIError (MariaDB's max_statement_time arrives as an OperationalError already).
_PG_QUERY_CANCELED = "57014"


# Whether the running request is public traffic (set per request by the middleware), and
# whether this task already holds one of the public share's slots (a nested transaction
# must not wait for a second one, or a full share would wait on itself).
_PUBLIC = ContextVar("bookings_db_public", default=False)
_HOLDING_SLOT = ContextVar("bookings_db_holding_slot", default=False)


@contextmanager
def public_lane(public: bool = True) -> Iterator[None]:
    """Mark the work in this context as public traffic's (or not) for the pool."""
    token = _PUBLIC.set(public)
    try:
        yield
    finally:
        _PUBLIC.reset(token)


def async_url(url: str) -> sa.URL:
    """Accept the URLs people write (``postgresql://``, ``mysql://``, ``mariadb://``)."""
    try:
        parsed = make_url(url)
    except sa_exc.ArgumentError as error:
        raise InvalidRequest(f"not a database URL: {error}") from None
    driver = _DRIVERS.get(parsed.drivername)
    if driver is None:
        raise InvalidRequest(
            f"unsupported database {parsed.drivername!r}: use postgresql:// or mysql://"
        )
    return parsed.set(drivername=driver)


def _connect_args(url: sa.URL, settings: Settings) -> dict[str, Any]:
    statement_s = settings.db_statement_timeout_s
    statement_ms = int(statement_s * 1000)
    lock_s = min(settings.db_lock_timeout_s, statement_s * 0.8)
    if url.get_backend_name() == "postgresql":
        return {
            "timeout": settings.db_connect_timeout_s,
            # Client-side bound as well, for a server that stops answering altogether.
            "command_timeout": settings.db_statement_timeout_s + 1.0,
            "server_settings": {
                "statement_timeout": str(statement_ms),
                "lock_timeout": str(max(1, int(lock_s * 1000))),
                "idle_in_transaction_session_timeout": str(statement_ms * 4),
                "application_name": "bookings",
            },
        }
    return {
        "connect_timeout": max(1, round(settings.db_connect_timeout_s)),
        # Every read bounded, the server's greeting included: a server that accepts and
        # then never answers must not hold a request (nor a connect whose cancellation
        # Python 3.11's wait_for can lose) beyond the statement timeout.
        "read_timeout": statement_s + 1.0,
        "init_command": (
            f"SET SESSION max_statement_time={statement_s:.3f}, "
            # Whole seconds, at least 1: with a statement timeout near 1 s either may fire.
            f"innodb_lock_wait_timeout={max(1, int(lock_s))}, time_zone='+00:00'"
        ),
    }


def make_engine(settings: Settings) -> AsyncEngine:
    url = async_url(settings.database_url)
    return create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_s,
        pool_pre_ping=True,
        pool_recycle=1800,
        # PostgreSQL's default; on MariaDB it avoids REPEATABLE READ's gap locks, which turn
        # concurrent inserts into deadlocks.
        isolation_level="READ COMMITTED",
        connect_args=_connect_args(url, settings),
    )


def sqlstate(error: BaseException) -> str | int | None:
    """The server's error code behind a SQLAlchemy error, on either driver."""
    orig = getattr(error, "orig", None)
    if orig is None:
        return None
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int):
        # MySQL/MariaDB: the error number, not the SQLSTATE (a lock wait timeout is HY000).
        return args[0]
    state = getattr(orig, "sqlstate", None) or getattr(
        getattr(orig, "__cause__", None), "sqlstate", None
    )
    return str(state) if state else None


def _chain(error: BaseException, depth: int = 8) -> list[BaseException]:
    """The error and what caused it. MariaDB rolls back the whole transaction on a deadlock,
    so the savepoint's own rollback then fails ("SAVEPOINT … does not exist") and that
    second error is the one that surfaces: the deadlock is in its cause."""
    found: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and len(found) < depth:
        found.append(current)
        current = current.__cause__ or current.__context__
    return found


def is_retryable(error: BaseException) -> bool:
    codes = {sqlstate(e) for e in _chain(error)}
    return bool(codes & (_RETRYABLE_SQLSTATES | _RETRYABLE_MYSQL))


def is_lock_timeout(error: BaseException) -> bool:
    codes = {sqlstate(e) for e in _chain(error)}
    return bool(codes & {_MYSQL_LOCK_WAIT_TIMEOUT, _PG_LOCK_NOT_AVAILABLE})


def is_unavailable(error: BaseException) -> bool:
    """Connection-level trouble: the database is down, unreachable, slow or saturated."""
    if isinstance(error, sa_exc.IntegrityError) or is_retryable(error) or is_lock_timeout(error):
        return False
    if sqlstate(error) == _PG_QUERY_CANCELED:  # statement_timeout: slow, so unavailable
        return True
    return isinstance(
        error,
        sa_exc.OperationalError
        | sa_exc.InterfaceError
        | sa_exc.TimeoutError
        | OSError
        | TimeoutError
        | ConnectionError,
    ) or (isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated)


class Database:
    def __init__(self, settings: Settings, breaker: CircuitBreaker) -> None:
        self.engine = make_engine(settings)
        self.dialect = self.engine.dialect.name
        self.breaker = breaker
        self.lock_timeouts = 0
        # Checkout (pool slot, pre-ping, connect) has its own bound: a database that stopped
        # answering (a partition, not a refusal) must cost a request no more than this.
        self._checkout_s = max(settings.db_pool_timeout_s, settings.db_connect_timeout_s)
        # A hard ceiling per transaction for a server that accepts and then never answers.
        self._deadline_s = (
            settings.db_statement_timeout_s
            + settings.db_connect_timeout_s
            + settings.db_pool_timeout_s
            + 1.0
        )
        capacity = settings.db_pool_size + settings.db_max_overflow
        share = capacity - settings.db_pool_reserved
        self.public_share = share if settings.db_pool_reserved and share >= 1 else None
        self._public_slots = asyncio.Semaphore(share) if self.public_share else None

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """One transaction; trouble with the database itself becomes ``DbUnavailable``."""
        slots = self._public_slots
        if slots is None or not _PUBLIC.get() or _HOLDING_SLOT.get():
            async with self._transaction() as conn:
                yield conn
            return
        try:
            async with asyncio.timeout(self._checkout_s):
                await slots.acquire()
        except TimeoutError:
            raise DbSaturated() from None
        holding = _HOLDING_SLOT.set(True)
        try:
            async with self._transaction() as conn:
                yield conn
        finally:
            _HOLDING_SLOT.reset(holding)
            slots.release()

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncConnection]:
        if not self.breaker.allow():
            raise DbUnavailable()
        try:
            async with asyncio.timeout(self._checkout_s) as limit, self.engine.begin() as conn:
                limit.reschedule(asyncio.get_running_loop().time() + self._deadline_s)
                yield conn
        except Exception as error:
            if is_lock_timeout(error) or is_retryable(error):
                # Contention, not an outage: answer 503 but leave the breaker alone.
                self.lock_timeouts += is_lock_timeout(error)
                self.breaker.record_success()
                raise DbBusy() from error
            if is_unavailable(error):
                self.breaker.record_failure()
                raise DbUnavailable() from error
            self.breaker.record_success()  # the database answered; the request was refused
            raise
        self.breaker.record_success()

    async def ping(self) -> None:
        async with self.transaction() as conn:
            await conn.execute(sa.text("SELECT 1"))

    def pool_status(self) -> tuple[int, int]:
        """(connections in use, pool capacity) for the pool metrics."""
        pool: Any = self.engine.pool
        return int(pool.checkedout()), int(pool.size()) + int(getattr(pool, "_max_overflow", 0))

    async def close(self) -> None:
        await self.engine.dispose()
