"""Stripe events: verified, deduplicated by event id, applied once, failures kept for replay.

Receipt: the signature and timestamp are checked first (nothing is stored for a forged or
stale event). With ``WEBHOOK_DEDUP_ENABLED`` the event id is claimed by inserting its row:
an event already processed is acknowledged without effect; one being processed by another
worker is acknowledged too (if that worker fails, its 500 makes the provider deliver
again); a failed one is taken over. The state change and the ``processed`` mark commit in
one transaction, so an event is applied exactly once. A processing failure is recorded
(attempts, last error) and answered with 500 so the provider retries; the row is the
dead-letter entry an admin can replay.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson
import sqlalchemy as sa
import structlog
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection

from bookings.adapters import queries
from bookings.adapters.flags import WEBHOOK_DEDUP_ENABLED
from bookings.adapters.stripe_gateway import snapshot
from bookings.adapters.tables import webhook_events as events
from bookings.domain.payments import PaymentStatus
from bookings.domain.ports import IntentSnapshot
from bookings.errors import NotFound
from bookings.services.context import Context
from bookings.services.settlement import Applied, Settlement

log = structlog.get_logger(__name__)
_STALE_CLAIM = timedelta(seconds=60)
_INTENT_EVENTS = {
    "payment_intent.succeeded",
    "payment_intent.processing",
    "payment_intent.requires_action",
    "payment_intent.payment_failed",
    "payment_intent.canceled",
    "payment_intent.amount_capturable_updated",
}


@dataclass(frozen=True, slots=True)
class Outcome:
    status: str  # processed | duplicate | in_progress | ignored | unmatched | failed
    event_id: str


class ProcessingFailedError(Exception):
    """Applying the event failed; the row records why and the provider will retry."""


def intent_of(event: Any) -> IntentSnapshot | None:
    """What an event says about a PaymentIntent, or None if it says nothing we use."""
    kind = event["type"]
    obj = event["data"]["object"]
    if kind in _INTENT_EVENTS:
        return snapshot(obj)
    if kind == "charge.refunded" and obj.get("payment_intent"):
        full = bool(obj.get("refunded"))
        status = PaymentStatus.REFUNDED if full else PaymentStatus.SUCCEEDED
        return IntentSnapshot(str(obj["payment_intent"]), status, int(obj.get("amount") or 0), {})
    return None


class Webhooks:
    def __init__(self, ctx: Context, settlement: Settlement) -> None:
        self._ctx = ctx
        self._settlement = settlement

    async def handle(self, event: Any, *, replay: bool = False) -> Outcome:
        ctx = self._ctx
        event_id, payload = str(event["id"]), orjson.dumps(event).decode()
        ctx.metrics.webhooks.labels("replayed" if replay else "received").inc()
        dedup = not ctx.unsafe and await ctx.flags.enabled(WEBHOOK_DEDUP_ENABLED)
        if dedup:
            verdict = await self._claim(event_id, str(event["type"]), payload)
            if verdict is not None:
                ctx.metrics.webhooks.labels("deduplicated").inc()
                log.info("webhook deduplicated", event_id=event_id, state=verdict)
                return Outcome(verdict, event_id)
        try:
            async with ctx.db.transaction() as conn:
                status, applied = await self._apply(conn, event)
                await self._mark(
                    conn, event_id, str(event["type"]), payload, status=status, dedup=dedup
                )
        except Exception as error:
            await self._record_failure(event_id, str(event["type"]), payload, error, dedup)
            ctx.metrics.webhooks.labels("failed").inc()
            log.warning("webhook processing failed", event_id=event_id, error=type(error).__name__)
            raise ProcessingFailedError(str(error)) from error
        ctx.metrics.webhooks.labels("processed").inc()
        if applied is not None and applied.needs_refund:
            # The refund the settlement asked for, outside the event's transaction.
            await self._settlement.refund_if_needed(applied.payment_id)
        return Outcome(status, event_id)

    async def _claim(self, event_id: str, kind: str, payload: str) -> str | None:
        """None if this delivery should process the event, else why not."""
        now = self._ctx.now()
        try:
            async with self._ctx.db.transaction() as conn:
                await conn.execute(
                    sa.insert(events).values(
                        id=event_id, type=kind, status="processing", attempts=1, deliveries=1,
                        payload=payload, received_at=now,
                    )
                )  # fmt: skip
            return None
        except sa_exc.IntegrityError:
            pass
        async with self._ctx.db.transaction() as conn:
            row = (
                await conn.execute(
                    sa.select(events).where(events.c.id == event_id).with_for_update()
                )
            ).one()
            await conn.execute(
                sa.update(events).where(events.c.id == event_id)
                .values(deliveries=events.c.deliveries + 1)
            )  # fmt: skip
            if row.status in ("processed", "ignored", "unmatched"):
                return "duplicate"
            if row.status == "processing" and row.received_at > now - _STALE_CLAIM:
                return "in_progress"
            await conn.execute(
                sa.update(events).where(events.c.id == event_id)
                .values(status="processing", attempts=events.c.attempts + 1, received_at=now)
            )  # fmt: skip
        return None

    async def _apply(self, conn: AsyncConnection, event: Any) -> tuple[str, Applied | None]:
        snap = intent_of(event)
        if snap is None:
            return "ignored", None
        payment = await queries.payment_by_intent(conn, snap.id)
        if payment is None:
            log.info("webhook for an unknown intent", event_id=event["id"])
            return "unmatched", None
        applied = await self._settlement.apply_in(
            conn, payment.id, snap, source=f"event:{event['id']}", authoritative=False
        )
        return "processed", applied

    async def _mark(
        self, conn: AsyncConnection, event_id: str, kind: str, payload: str, *, status: str,
        dedup: bool,
    ) -> None:  # fmt: skip
        now = self._ctx.now()
        if dedup:
            await conn.execute(
                sa.update(events).where(events.c.id == event_id)
                .values(status=status, processed_at=now, last_error=None)
            )  # fmt: skip
            return
        # Without dedup the row is only a record: the last delivery's outcome.
        await _upsert(conn, event_id, kind, payload, status=status, now=now)

    async def _record_failure(
        self, event_id: str, kind: str, payload: str, error: BaseException, claimed: bool
    ) -> None:
        reason = f"{type(error).__name__}: {error}"[:1000]
        try:
            async with self._ctx.db.transaction() as conn:
                if claimed:  # the claim counted the attempt already
                    await conn.execute(
                        sa.update(events).where(events.c.id == event_id)
                        .values(status="failed", last_error=reason)
                    )  # fmt: skip
                else:
                    now = self._ctx.now()
                    await _upsert(
                        conn, event_id, kind, payload, status="failed", now=now, error=reason
                    )
        except Exception:  # the database may be the failure; the provider retries anyway
            log.exception("could not record a failed webhook", event_id=event_id)

    async def failed(self, limit: int = 100) -> list[dict[str, Any]]:
        async with self._ctx.db.transaction() as conn:
            rows = await conn.execute(
                sa.select(events.c.id, events.c.type, events.c.attempts, events.c.deliveries,
                          events.c.last_error, events.c.received_at)
                .where(events.c.status == "failed").order_by(events.c.received_at).limit(limit)
            )  # fmt: skip
            return [dict(row._mapping) for row in rows]

    async def replay(self, event_id: str) -> Outcome:
        async with self._ctx.db.transaction() as conn:
            row = (await conn.execute(sa.select(events).where(events.c.id == event_id))).first()
        if row is None:
            raise NotFound(f"no webhook event {event_id}", code="event_not_found")
        return await self.handle(orjson.loads(row.payload), replay=True)


async def _upsert(
    conn: AsyncConnection, event_id: str, kind: str, payload: str, *, status: str, now: Any,
    error: str | None = None,
) -> None:  # fmt: skip
    updated = await conn.execute(
        sa.update(events).where(events.c.id == event_id)
        .values(status=status, attempts=events.c.attempts + 1, last_error=error,
                processed_at=None if error else now)
    )  # fmt: skip
    if updated.rowcount == 0:
        await conn.execute(
            sa.insert(events).values(
                id=event_id, type=kind, status=status, attempts=1, deliveries=1,
                payload=payload, received_at=now, last_error=error,
                processed_at=None if error else now,
            )
        )  # fmt: skip
