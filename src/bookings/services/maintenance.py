"""The background loop of each worker: expire holds, send email, finish refunds, tidy up.

Every step is bounded per tick and isolated: one failing step (the database is down, SMTP
is down) is logged and the loop goes on; nothing here can crash the worker. Workers run
the loop side by side safely because each step claims its rows with ``SKIP LOCKED`` or
works idempotently.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import sqlalchemy as sa
import structlog

from bookings.adapters.access_log import AccessLog
from bookings.adapters.tables import payments
from bookings.errors import BookingsError
from bookings.services.context import Context
from bookings.services.holds import Holds
from bookings.services.idempotency import IdempotencyStore
from bookings.services.outbox import Outbox
from bookings.services.settlement import Settlement

log = structlog.get_logger(__name__)
_REFUNDS_PER_TICK = 20


class Maintenance:
    def __init__(
        self,
        ctx: Context,
        holds: Holds,
        outbox: Outbox,
        settlement: Settlement,
        keys: IdempotencyStore,
        *,
        access_log: AccessLog,
    ) -> None:
        self._ctx = ctx
        self._holds = holds
        self._outbox = outbox
        self._settlement = settlement
        self._keys = keys
        self._access_log = access_log

    async def retry_refunds(self) -> int:
        async with self._ctx.db.transaction() as conn:
            due = (
                await conn.execute(
                    sa.select(payments.c.id).where(payments.c.needs_refund.is_(True))
                    .limit(_REFUNDS_PER_TICK)
                )
            ).scalars().all()  # fmt: skip
        for payment_id in due:
            await self._settlement.refund_if_needed(payment_id)
        return len(due)

    async def prune_access_log(self) -> int:
        s = self._ctx.settings
        return await self._access_log.prune(self._ctx.now(), s.access_log_retention_s)

    async def update_gauges(self) -> None:
        m, db = self._ctx.metrics, self._ctx.db
        in_use, size = db.pool_status()
        m.db_pool_in_use.set(in_use)
        m.db_pool_size.set(size)
        m.db_lock_timeouts.set(db.lock_timeouts)
        m.outbox_backlog.set(await self._outbox.backlog())

    async def tick(self) -> None:
        steps: list[tuple[str, Callable[[], Awaitable[object]]]] = [
            ("flags", self._ctx.flags.refresh),
            ("expire_holds", self._holds.expire_due),
            ("outbox", self._outbox.deliver_due),
            ("refunds", self.retry_refunds),
            ("idempotency_purge", self._keys.purge),
            ("access_log_prune", self.prune_access_log),
            ("gauges", self.update_gauges),
        ]
        for name, step in steps:
            try:
                await step()
            except (BookingsError, OSError, TimeoutError) as error:
                cause = error.__cause__
                log.warning(
                    "maintenance step failed",
                    step=name,
                    error=type(error).__name__,
                    cause=str(getattr(cause, "orig", cause))[:200] if cause else None,
                )
            except Exception:
                log.exception("maintenance step crashed", step=name)

    async def run(self) -> None:
        """Forever, until cancelled; woken early when an email is queued."""
        interval = self._ctx.settings.maintenance_interval_s
        while True:
            await self.tick()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._outbox.wakeup.wait(), timeout=interval)
            self._outbox.wakeup.clear()
