"""Who asked for what, kept in the database for the ``security`` runbook.

One row per request: time, source address, method, route template, status, the user and
the issue time of their token when a token named one, duration and request id. Never the
query string, body or headers, so no token, card or e-mail reaches it. That is the
evidence an incident needs for "what did this address do" and "where was this account
used from", as data rather than log files scattered over hosts.

The hot path pays an append to an in-memory buffer, not a round trip: a loop writes the
buffer in one batch every ``access_log_flush_s``. The buffer is bounded: while the
database cannot be written the oldest rows are dropped first and counted in
``bookings_access_log_dropped_total``, so an outage cannot grow the worker's memory.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
import structlog

from bookings.adapters.db import Database
from bookings.adapters.tables import access_log
from bookings.errors import BookingsError
from bookings.observability.metrics import Metrics

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Entry:
    at: datetime
    source: str
    method: str
    route: str
    status: int
    user_id: int | None
    token_issued_at: datetime | None
    duration_ms: float
    request_id: str


class AccessLog:
    def __init__(self, db: Database, metrics: Metrics, *, capacity: int) -> None:
        self._db = db
        self._metrics = metrics
        self._capacity = capacity
        self._buffer: deque[Entry] = deque()

    def __len__(self) -> int:
        return len(self._buffer)

    def record(self, entry: Entry) -> None:
        if len(self._buffer) >= self._capacity:
            self._buffer.popleft()
            self._metrics.access_log_dropped.inc()
        self._buffer.append(entry)

    async def flush(self) -> int:
        """Write what is buffered; on failure it stays buffered (bounded) for the next try."""
        if not self._buffer:
            return 0
        # Swapped, not popped: entries recorded while the insert awaits go to the new buffer.
        batch, self._buffer = self._buffer, deque()
        try:
            async with self._db.transaction() as conn:
                await conn.execute(sa.insert(access_log), [_row(e) for e in batch])
        except BaseException:
            batch.extend(self._buffer)
            overflow = len(batch) - self._capacity
            for _ in range(max(0, overflow)):
                batch.popleft()
            if overflow > 0:
                self._metrics.access_log_dropped.inc(overflow)
            self._buffer = batch
            raise
        return len(batch)

    async def flush_quietly(self) -> None:
        try:
            await self.flush()
        except (BookingsError, OSError, TimeoutError, sa.exc.SQLAlchemyError) as error:
            log.warning("access log not written", error=type(error).__name__,
                        buffered=len(self._buffer))  # fmt: skip

    async def run(self, interval_s: float) -> None:
        """Forever, until cancelled: one batch per interval; a failed write is retried on
        the next one."""
        while True:
            await asyncio.sleep(interval_s)
            await self.flush_quietly()

    async def prune(self, now: datetime, retention_s: float) -> int:
        """Forget rows past the retention (run every maintenance tick, so each delete is
        small)."""
        cutoff = now - timedelta(seconds=retention_s)
        async with self._db.transaction() as conn:
            done = await conn.execute(sa.delete(access_log).where(access_log.c.at < cutoff))
        return int(done.rowcount or 0)


def _row(entry: Entry) -> dict[str, object]:
    row = asdict(entry)
    row["source"] = entry.source[:64]
    row["route"] = entry.route[:200]
    row["request_id"] = entry.request_id[:64]
    return row
