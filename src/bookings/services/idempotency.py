"""Stored answers for ``Idempotency-Key``, with Stripe's semantics.

``begin`` claims a key for one execution, or returns the stored answer of the execution
that finished, or refuses: ``IdempotencyMismatch`` when the key came with another request,
``IdempotencyInProgress`` while the first execution runs. The claim is a row insert, so
exactly one of any number of concurrent requests (on any worker) wins it. A claim whose
holder died is taken over after ``lease_s``; the execution it then repeats is safe because
every provider call carries a key derived from this one. ``abandon`` forgets a claim whose
execution ended in a transient failure, so the client's retry executes again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from bookings.adapters.tables import idempotency_keys as keys
from bookings.errors import IdempotencyInProgress, IdempotencyMismatch
from bookings.services.context import Context

RETENTION = timedelta(hours=24)
_CLAIM_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    status: int
    body: Any


class IdempotencyStore:
    def __init__(self, ctx: Context, lease_s: float) -> None:
        self._ctx = ctx
        self._lease = timedelta(seconds=lease_s)

    async def begin(self, scope: str, key: str, fingerprint: str) -> StoredAnswer | None:
        """``None``: the caller executes. Otherwise the answer to send again."""
        for _ in range(_CLAIM_ATTEMPTS):
            now = self._ctx.now()
            try:
                async with self._ctx.db.transaction() as conn:
                    await conn.execute(
                        sa.insert(keys).values(
                            scope=scope,
                            idem_key=key,
                            request_hash=fingerprint,
                            status="in_progress",
                            locked_until=now + self._lease,
                            created_at=now,
                        )
                    )
                self._ctx.metrics.idempotency.labels("executed").inc()
                return None
            except sa_exc.IntegrityError:
                pass
            async with self._ctx.db.transaction() as conn:
                row = (
                    await conn.execute(
                        sa.select(keys).where(keys.c.scope == scope, keys.c.idem_key == key)
                    )
                ).first()
                if row is None:
                    continue  # abandoned between our insert and read: claim again
                answer = await self._existing(conn, row, fingerprint)
            if answer is not None:
                return answer
            self._ctx.metrics.idempotency.labels("executed").inc()
            return None
        raise IdempotencyInProgress()

    async def _existing(self, conn: Any, row: Any, fingerprint: str) -> StoredAnswer | None:
        metrics = self._ctx.metrics.idempotency
        if row.request_hash != fingerprint:
            metrics.labels("mismatch").inc()
            raise IdempotencyMismatch()
        if row.status == "completed":
            metrics.labels("replayed").inc()
            return StoredAnswer(row.response_status, orjson.loads(row.response_body))
        now = self._ctx.now()
        if row.locked_until > now:
            metrics.labels("in_progress").inc()
            raise IdempotencyInProgress()
        taken = await conn.execute(
            sa.update(keys)
            .where(
                keys.c.scope == row.scope,
                keys.c.idem_key == row.idem_key,
                keys.c.status == "in_progress",
                keys.c.locked_until == row.locked_until,
            )
            .values(locked_until=now + self._lease)
        )
        if taken.rowcount != 1:
            metrics.labels("in_progress").inc()
            raise IdempotencyInProgress()
        return None  # the previous holder died: this request executes (same derived keys)

    async def finish(self, scope: str, key: str, answer: StoredAnswer) -> None:
        async with self._ctx.db.transaction() as conn:
            await conn.execute(
                sa.update(keys)
                .where(keys.c.scope == scope, keys.c.idem_key == key)
                .values(
                    status="completed",
                    response_status=answer.status,
                    response_body=orjson.dumps(answer.body).decode(),
                )
            )

    async def abandon(self, scope: str, key: str) -> None:
        async with self._ctx.db.transaction() as conn:
            await conn.execute(
                sa.delete(keys).where(
                    keys.c.scope == scope, keys.c.idem_key == key, keys.c.status == "in_progress"
                )
            )

    async def purge(self, limit: int = 1000) -> int:
        """Forget keys older than 24 hours, as Stripe does."""
        cutoff = self._ctx.now() - RETENTION
        async with self._ctx.db.transaction() as conn:
            old = (
                await conn.execute(
                    sa.select(keys.c.scope, keys.c.idem_key)
                    .where(keys.c.created_at < cutoff)
                    .limit(limit)
                )
            ).all()
            for scope, key in old:
                await conn.execute(
                    sa.delete(keys).where(keys.c.scope == scope, keys.c.idem_key == key)
                )
        return len(old)
