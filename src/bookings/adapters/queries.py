"""The SQL the services run, as small functions over one open connection.

Kept as SQLAlchemy Core (not ORM) so every statement and every lock is visible where it
is written: the booking path is four statements, and each matters for correctness.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bookings.adapters.tables import (
    UTCDateTime,
    bookings,
    payment_transitions,
    payments,
    resources,
    slots,
)
from bookings.domain.model import ACTIVE, Booking, BookingStatus, TimeRange
from bookings.domain.payments import PaymentStatus

_ACTIVE = [s.value for s in ACTIVE]


def to_booking(row: Any) -> Booking:
    return Booking(
        id=row.id,
        resource_id=row.resource_id,
        user_id=row.user_id,
        span=TimeRange(row.starts_at, row.ends_at),
        status=BookingStatus(row.status),
        amount_cents=row.amount_cents,
        currency=row.currency,
        hold_expires_at=row.hold_expires_at,
    )


# The hold path's statements are built once, with bound parameters: building a Core
# construct per call costs more CPU than the database spends running it.
_RID: sa.BindParameter[int] = sa.bindparam("rid", type_=sa.BigInteger())
_STARTS: sa.BindParameter[datetime] = sa.bindparam("starts", type_=UTCDateTime())
_ENDS: sa.BindParameter[datetime] = sa.bindparam("ends", type_=UTCDateTime())
_NOW: sa.BindParameter[datetime] = sa.bindparam("now", type_=UTCDateTime())
_OVERLAPPING = sa.and_(
    bookings.c.resource_id == _RID, bookings.c.starts_at < _ENDS, bookings.c.ends_at > _STARTS
)
_GET_RESOURCE = sa.select(resources).where(resources.c.id == _RID)
_LOCK_RESOURCE = _GET_RESOURCE.with_for_update()
_RELEASE_STALE = (
    sa.update(bookings)
    .where(
        _OVERLAPPING,
        bookings.c.status == BookingStatus.HELD.value,
        bookings.c.hold_expires_at <= _NOW,
    )
    .values(status=BookingStatus.EXPIRED.value, updated_at=_NOW)
)
_FIRST_OVERLAP = (
    sa.select(bookings.c.id).where(_OVERLAPPING, bookings.c.status.in_(_ACTIVE)).limit(1)
)
_FIRST_OTHER_OVERLAP = _FIRST_OVERLAP.where(bookings.c.id != sa.bindparam("exclude"))
_INSERT_BOOKING = sa.insert(bookings)


def _span(resource_id: int, span: TimeRange) -> dict[str, Any]:
    return {"rid": resource_id, "starts": span.starts_at, "ends": span.ends_at}


async def lock_resource(conn: AsyncConnection, resource_id: int) -> Any | None:
    """The resource row, locked until commit: holds of one resource go one at a time."""
    return (await conn.execute(_LOCK_RESOURCE, {"rid": resource_id})).first()


async def get_resource(conn: AsyncConnection, resource_id: int) -> Any | None:
    return (await conn.execute(_GET_RESOURCE, {"rid": resource_id})).first()


async def release_stale_holds(
    conn: AsyncConnection, resource_id: int, span: TimeRange, now: datetime
) -> int:
    """Expire overlapping holds whose time is up, so they never block a new hold."""
    result = await conn.execute(_RELEASE_STALE, {**_span(resource_id, span), "now": now})
    return int(result.rowcount)


async def first_overlap(
    conn: AsyncConnection, resource_id: int, span: TimeRange, exclude: int | None = None
) -> int | None:
    if exclude is None:
        return (await conn.execute(_FIRST_OVERLAP, _span(resource_id, span))).scalar()
    params = {**_span(resource_id, span), "exclude": exclude}
    return (await conn.execute(_FIRST_OTHER_OVERLAP, params)).scalar()


async def insert_booking(conn: AsyncConnection, **values: Any) -> int:
    result = await conn.execute(_INSERT_BOOKING, values)
    return int(result.inserted_primary_key[0])  # type: ignore[index]


async def get_booking(
    conn: AsyncConnection, booking_id: int, *, for_update: bool = False
) -> Booking | None:
    query = sa.select(bookings).where(bookings.c.id == booking_id)
    if for_update:
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    return to_booking(row) if row else None


async def set_booking_status(
    conn: AsyncConnection, booking_id: int, status: BookingStatus, now: datetime
) -> None:
    await conn.execute(
        sa.update(bookings)
        .where(bookings.c.id == booking_id)
        .values(status=status.value, updated_at=now)
    )


_ACTIVE_IN = (
    sa.select(bookings.c.starts_at, bookings.c.ends_at)
    .where(_OVERLAPPING, bookings.c.status.in_(_ACTIVE))
    .order_by(bookings.c.starts_at)
)


async def active_in(
    conn: AsyncConnection, resource_id: int, span: TimeRange
) -> Sequence[tuple[datetime, datetime]]:
    rows = await conn.execute(_ACTIVE_IN, _span(resource_id, span))
    return [(r.starts_at, r.ends_at) for r in rows]


async def slots_in(
    conn: AsyncConnection, resource_id: int, window: TimeRange
) -> Sequence[tuple[datetime, datetime]]:
    rows = await conn.execute(
        sa.select(slots.c.starts_at, slots.c.ends_at)
        .where(
            slots.c.resource_id == resource_id,
            slots.c.starts_at < window.ends_at,
            slots.c.ends_at > window.starts_at,
        )
        .order_by(slots.c.starts_at)
        .limit(1000)
    )
    return [(r.starts_at, r.ends_at) for r in rows]


async def due_holds(conn: AsyncConnection, now: datetime, limit: int) -> list[tuple[int, int]]:
    """(booking id, resource id) of holds past their expiry, locked, skipping busy rows."""
    rows = await conn.execute(
        sa.select(bookings.c.id, bookings.c.resource_id)
        .where(bookings.c.status == BookingStatus.HELD.value, bookings.c.hold_expires_at <= now)
        .order_by(bookings.c.hold_expires_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [(r.id, r.resource_id) for r in rows]


async def expire_holds(conn: AsyncConnection, booking_ids: list[int], now: datetime) -> None:
    await conn.execute(
        sa.update(bookings)
        .where(bookings.c.id.in_(booking_ids), bookings.c.status == BookingStatus.HELD.value)
        .values(status=BookingStatus.EXPIRED.value, updated_at=now)
    )


async def payment_for_booking(
    conn: AsyncConnection, booking_id: int, *, for_update: bool = False
) -> Any | None:
    query = sa.select(payments).where(payments.c.booking_id == booking_id).order_by(payments.c.id)
    if for_update:
        query = query.with_for_update()
    return (await conn.execute(query.limit(1))).first()


async def payment_by_intent(conn: AsyncConnection, intent_id: str) -> Any | None:
    """A lookup without a lock: settlement locks booking, then payment, in that order."""
    query = sa.select(payments).where(payments.c.provider_intent_id == intent_id)
    return (await conn.execute(query.limit(1))).first()


async def get_payment(
    conn: AsyncConnection, payment_id: int, *, for_update: bool = False
) -> Any | None:
    query = sa.select(payments).where(payments.c.id == payment_id)
    if for_update:
        query = query.with_for_update()
    return (await conn.execute(query)).first()


async def insert_payment(conn: AsyncConnection, **values: Any) -> int:
    result = await conn.execute(sa.insert(payments).values(**values))
    return int(result.inserted_primary_key[0])  # type: ignore[index]


async def update_payment(conn: AsyncConnection, payment_id: int, **values: Any) -> None:
    await conn.execute(sa.update(payments).where(payments.c.id == payment_id).values(**values))


async def record_transition(
    conn: AsyncConnection,
    payment_id: int,
    *,
    old: PaymentStatus,
    new: PaymentStatus,
    source: str,
    now: datetime,
) -> None:
    await conn.execute(
        sa.insert(payment_transitions).values(
            payment_id=payment_id,
            from_status=old.value,
            to_status=new.value,
            source=source[:128],
            at=now,
        )
    )
