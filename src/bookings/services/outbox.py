"""Emails through a transactional outbox: written with the state change, sent afterwards.

A confirmation is inserted in the same transaction that confirms the booking, under a
dedup key (``booking-confirmed-<id>``) with a unique index, so however many times the
payment is reported, one email is queued. Delivery is at least once: a worker claims due
rows (``FOR UPDATE SKIP LOCKED``, so workers never take the same row), pushes the claim's
``next_attempt_at`` past the send, sends, then marks the row sent or schedules a retry
with exponential backoff and jitter, up to ``outbox_max_attempts`` before it is ``dead``.
"""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection

from bookings.adapters.tables import bookings, outbox, resources, users
from bookings.domain.ports import Mailer
from bookings.services.context import Context

log = structlog.get_logger(__name__)
_CLAIM = timedelta(seconds=60)


def confirmation_key(booking_id: int) -> str:
    return f"booking-confirmed-{booking_id}"


async def enqueue_confirmation(
    conn: AsyncConnection, ctx: Context, booking_id: int, dedup_key: str | None
) -> bool:
    """Queue the confirmation email in the caller's transaction; False if already queued."""
    row = (
        await conn.execute(
            sa.select(users.c.email, bookings.c.starts_at, bookings.c.ends_at, resources.c.name)
            .select_from(
                bookings.join(users, users.c.id == bookings.c.user_id).join(
                    resources, resources.c.id == bookings.c.resource_id
                )
            )
            .where(bookings.c.id == booking_id)
        )
    ).one()
    now = ctx.now()
    values = {
        "kind": "booking_confirmed",
        "dedup_key": dedup_key,
        "booking_id": booking_id,
        "recipient": row.email,
        "subject": f"Booking #{booking_id} confirmed",
        "body": (
            f"Your booking #{booking_id} of {row.name} from {row.starts_at.isoformat()} "
            f"to {row.ends_at.isoformat()} is confirmed and paid."
        ),
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }
    if dedup_key is not None:
        # A savepoint, so a duplicate does not spoil the caller's transaction.
        try:
            async with conn.begin_nested():
                await conn.execute(sa.insert(outbox).values(**values))
        except sa_exc.IntegrityError:
            return False
        return True
    await conn.execute(sa.insert(outbox).values(**values))
    return True


class Outbox:
    def __init__(self, ctx: Context, mailer: Mailer) -> None:
        self._ctx = ctx
        self._mailer = mailer
        self.wakeup = asyncio.Event()

    async def _claim(self) -> list[Any]:
        ctx = self._ctx
        now = ctx.now()
        async with ctx.db.transaction() as conn:
            rows = (
                await conn.execute(
                    sa.select(outbox)
                    .where(outbox.c.status == "pending", outbox.c.next_attempt_at <= now)
                    .order_by(outbox.c.next_attempt_at)
                    .limit(ctx.settings.outbox_batch)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if rows:
                await conn.execute(
                    sa.update(outbox)
                    .where(outbox.c.id.in_([r.id for r in rows]))
                    .values(next_attempt_at=now + _CLAIM, attempts=outbox.c.attempts + 1)
                )
        return list(rows)

    def _backoff(self, attempts: int) -> timedelta:
        s = self._ctx.settings
        delay = min(s.outbox_retry_base_s * 2 ** max(0, attempts - 1), s.outbox_retry_max_s)
        return timedelta(seconds=delay * random.uniform(0.5, 1.0))

    async def deliver_due(self) -> int:
        """One batch; returns how many were sent."""
        sent = 0
        for row in await self._claim():
            attempts = row.attempts + 1
            try:
                await self._mailer.send(recipient=row.recipient, subject=row.subject, body=row.body)
            except Exception as error:  # any SMTP or network trouble is retried
                dead = attempts >= self._ctx.settings.outbox_max_attempts
                await self._mark(
                    row.id,
                    status="dead" if dead else "pending",
                    next_attempt_at=self._ctx.now() + self._backoff(attempts),
                    last_error=f"{type(error).__name__}: {error}"[:500],
                )
                self._ctx.metrics.emails.labels("dead" if dead else "retry").inc()
                log.warning("email delivery failed", outbox_id=row.id, attempts=attempts)
                continue
            await self._mark(row.id, status="sent", sent_at=self._ctx.now(), last_error=None)
            self._ctx.metrics.emails.labels("sent").inc()
            sent += 1
        return sent

    async def _mark(self, outbox_id: int, **values: Any) -> None:
        async with self._ctx.db.transaction() as conn:
            await conn.execute(sa.update(outbox).where(outbox.c.id == outbox_id).values(**values))

    async def backlog(self) -> int:
        async with self._ctx.db.transaction() as conn:
            count = await conn.execute(
                sa.select(sa.func.count()).select_from(outbox).where(outbox.c.status == "pending")
            )
        return int(count.scalar_one())
