"""Holding a range of a resource, the booking invariant's front door.

Safe path, in one transaction: lock the resource row (``SELECT ... FOR UPDATE``), expire
stale holds in the range, look for an overlapping active booking, insert. The lock makes
concurrent holds of one resource take turns, so the overlap check is never stale; the
database constraint (exclusion on PostgreSQL, unique active keys on MariaDB) is the last
line if anything slips past. A loser gets ``SlotTaken`` — from the check or from the
constraint — never a 500. Deadlocks and serialization failures (which the lock order
should make impossible) are retried a few times and then answered with a 503, never with
a false "taken" that would turn a customer away from a free slot.

With ``BOOKING_ATOMIC_LOCKING`` off (and on the unsafe variant) the lock is skipped, which
leaves a check-then-insert race that only the constraint (if present) closes; the unsafe
variant also checks and inserts in two transactions, as a naive service would.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection

from bookings.adapters import queries
from bookings.adapters.cache import AvailabilityCache
from bookings.adapters.db import is_lock_timeout
from bookings.adapters.flags import BOOKING_ATOMIC_LOCKING
from bookings.domain.model import (
    Booking,
    BookingStatus,
    TimeRange,
    can_move,
    check_bookable,
    price_cents,
)
from bookings.domain.payments import PaymentStatus
from bookings.errors import (
    AlreadyPaid,
    DbBusy,
    DbSaturated,
    DbUnavailable,
    NotFound,
    SlotTaken,
)
from bookings.services.auth import Principal
from bookings.services.context import Context

log = structlog.get_logger(__name__)
_MAX_ATTEMPTS = 4


class Holds:
    def __init__(self, ctx: Context, cache: AvailabilityCache) -> None:
        self._ctx = ctx
        self._cache = cache

    async def hold(self, who: Principal, resource_id: int, span: TimeRange) -> Booking:
        ctx = self._ctx
        s = ctx.settings
        check_bookable(span, ctx.now(), max_days=s.max_booking_days, horizon_days=s.horizon_days)
        locking = not ctx.unsafe and await ctx.flags.enabled(BOOKING_ATOMIC_LOCKING)
        for attempt in range(1, _MAX_ATTEMPTS + 1):
            try:
                booking = await self._try_hold(who, resource_id, span, locking)
            except sa_exc.IntegrityError:
                ctx.metrics.holds.labels("constraint").inc()
                ctx.metrics.booking_conflicts.inc()
                log.info("booking conflict", resource_id=resource_id, by="constraint")
                raise SlotTaken() from None
            except DbBusy as busy:
                cause = busy.__cause__
                if (
                    attempt == _MAX_ATTEMPTS
                    or isinstance(busy, DbSaturated)
                    or (cause is not None and is_lock_timeout(cause))
                ):
                    raise  # retrying a lock wait or a full pool would only multiply the wait
                log.info("hold retried", reason="deadlock", attempt=attempt)
                continue
            await self._cache.invalidate(resource_id)
            ctx.metrics.holds.labels("held").inc()
            return booking
        raise DbUnavailable()  # pragma: no cover - the loop always returns or raises

    async def _try_hold(
        self, who: Principal, resource_id: int, span: TimeRange, locking: bool
    ) -> Booking:
        ctx = self._ctx
        now = ctx.now()
        if ctx.unsafe:
            # The naive variant checks availability in one transaction and books in the
            # next, the way the bug usually ships: nothing but luck closes that window.
            async with ctx.db.transaction() as conn:
                await self._check_free(conn, resource_id, span, locking=False)
        async with ctx.db.transaction() as conn:
            if ctx.unsafe:
                resource = await queries.get_resource(conn, resource_id)
            else:
                resource = await self._check_free(conn, resource_id, span, locking, now=now)
            if resource is None:
                raise NotFound(f"no resource {resource_id}", code="resource_not_found")
            values: dict[str, Any] = {
                "resource_id": resource_id,
                "user_id": who.user_id,
                "starts_at": span.starts_at,
                "ends_at": span.ends_at,
                "status": BookingStatus.HELD.value,
                "amount_cents": price_cents(span, resource.hourly_rate_cents),
                "currency": ctx.settings.currency,
                "hold_expires_at": now + timedelta(seconds=ctx.settings.hold_ttl_s),
                "created_at": now,
                "updated_at": now,
            }
            booking_id = await queries.insert_booking(conn, **values)
        log.debug("hold placed", booking_id=booking_id, resource_id=resource_id)
        return Booking(
            id=booking_id,
            resource_id=resource_id,
            user_id=who.user_id,
            span=span,
            status=BookingStatus.HELD,
            amount_cents=values["amount_cents"],
            currency=values["currency"],
            hold_expires_at=values["hold_expires_at"],
        )

    async def _check_free(
        self,
        conn: AsyncConnection,
        resource_id: int,
        span: TimeRange,
        locking: bool,
        now: datetime | None = None,
    ) -> Any:
        """The resource (``None`` if unknown), after making sure ``span`` is free on it.

        ``now`` releases stale holds in the range first; the naive variant leaves them to
        the cleanup job (on MariaDB that UPDATE's row locks would serialize it by accident).
        """
        lookup = queries.lock_resource if locking else queries.get_resource
        resource = await lookup(conn, resource_id)
        if resource is None:
            return None
        if now is not None:
            await queries.release_stale_holds(conn, resource_id, span, now)
        if await queries.first_overlap(conn, resource_id, span) is not None:
            self._ctx.metrics.holds.labels("conflict").inc()
            self._ctx.metrics.booking_conflicts.inc()
            log.info("booking conflict", resource_id=resource_id, by="check")
            raise SlotTaken()
        return resource

    async def get(self, who: Principal, booking_id: int) -> Booking:
        async with self._ctx.db.transaction() as conn:
            booking = await queries.get_booking(conn, booking_id)
        if booking is None or not (who.is_admin or booking.user_id == who.user_id):
            raise NotFound(f"no booking {booking_id}", code="booking_not_found")
        return booking

    async def availability(self, resource_id: int, window: TimeRange) -> dict[str, object]:
        """Busy ranges and offered slots in ``window``, through the cache."""

        async def load() -> str:
            async with self._ctx.db.transaction() as conn:
                if await queries.get_resource(conn, resource_id) is None:
                    raise NotFound(f"no resource {resource_id}", code="resource_not_found")
                busy = await queries.active_in(conn, resource_id, window)
                offered = await queries.slots_in(conn, resource_id, window)
            slots = [
                {
                    "starts_at": start.isoformat(),
                    "ends_at": end.isoformat(),
                    "available": not any(b0 < end and start < b1 for b0, b1 in busy),
                }
                for start, end in offered
            ]
            return json.dumps(
                {
                    "resource_id": resource_id,
                    "from": window.starts_at.isoformat(),
                    "to": window.ends_at.isoformat(),
                    "busy": [
                        {"starts_at": a.isoformat(), "ends_at": b.isoformat()} for a, b in busy
                    ],
                    "slots": slots,
                }
            )

        key = f"{window.starts_at.isoformat()}|{window.ends_at.isoformat()}"
        return dict(json.loads(await self._cache.get_or_load(resource_id, key, load)))

    async def expire_due(self, limit: int = 500) -> list[int]:
        """Release holds whose time is up; the maintenance loop calls this."""
        ctx = self._ctx
        now = ctx.now()
        async with ctx.db.transaction() as conn:
            due = await queries.due_holds(conn, now, limit)
            if due:
                await queries.expire_holds(conn, [b for b, _ in due], now)
        for resource_id in {r for _, r in due}:
            await self._cache.invalidate(resource_id)
        ctx.metrics.holds_expired.inc(len(due))
        return [b for b, _ in due]

    async def cancel(self, booking_id: int) -> tuple[Booking, Any | None]:
        """Cancel a held or confirmed booking; returns it with its payment row, if any.

        Decided under the booking's and the payment's locks (the settlement's order), so a
        payment that succeeds meanwhile cannot slip between the check and the cancel: a
        booking whose payment succeeded is refused with ``AlreadyPaid`` — refund first.
        """
        async with self._ctx.db.transaction() as conn:
            booking = await queries.get_booking(conn, booking_id, for_update=True)
            if booking is None:
                raise NotFound(f"no booking {booking_id}", code="booking_not_found")
            payment = await queries.payment_for_booking(conn, booking_id, for_update=True)
            if payment is not None and payment.status == PaymentStatus.SUCCEEDED.value:
                raise AlreadyPaid("refund the payment first", payment_id=payment.id)
            if can_move(booking.status, BookingStatus.CANCELED):
                await queries.set_booking_status(
                    conn, booking_id, BookingStatus.CANCELED, self._ctx.now()
                )
                booking = replace(booking, status=BookingStatus.CANCELED)
        await self._cache.invalidate(booking.resource_id)
        return booking, payment
