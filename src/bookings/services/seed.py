"""Drill data: the playbook's test population, tagged ``gameday`` so it can be removed.

20 normal and 10 premium customers, 15 guides (each a user and a bookable resource), one
admin. Each guide offers slots over the next days that overlap on purpose: a two-hour slot
every hour, so holding one slot takes its neighbours, which is what the race scenarios
need. Seeding twice changes nothing; cleanup removes exactly the tagged rows and
everything that hangs off them, and leaves every other row alone.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bookings.adapters.tables import (
    bookings,
    idempotency_keys,
    outbox,
    payment_transitions,
    payments,
    resources,
    slots,
    users,
)
from bookings.domain.model import Role, Tier
from bookings.services.auth import hash_password
from bookings.services.context import Context

NORMAL, PREMIUM, GUIDES = 20, 10, 15
SLOT_DAYS, FIRST_HOUR, LAST_HOUR = 7, 8, 18
GUIDE_RATE_CENTS = 4500
DOMAIN = "gameday.invalid"


@dataclass(frozen=True, slots=True)
class SeedReport:
    customers: int
    premium: int
    guides: int
    admins: int
    slots: int
    created: bool


def drill_users() -> list[tuple[str, Role, Tier]]:
    people = [
        (f"customer{i:02d}@{DOMAIN}", Role.CUSTOMER, Tier.NORMAL) for i in range(1, NORMAL + 1)
    ]
    people += [
        (f"premium{i:02d}@{DOMAIN}", Role.CUSTOMER, Tier.PREMIUM) for i in range(1, PREMIUM + 1)
    ]
    people += [(f"guide{i:02d}@{DOMAIN}", Role.GUIDE, Tier.NORMAL) for i in range(1, GUIDES + 1)]
    return [*people, (f"admin@{DOMAIN}", Role.ADMIN, Tier.PREMIUM)]


def overlapping_slots(day0: datetime) -> list[tuple[datetime, datetime]]:
    """Two-hour slots starting every hour: consecutive slots overlap by one hour."""
    out = []
    for day in range(1, SLOT_DAYS + 1):
        base = day0 + timedelta(days=day)
        for hour in range(FIRST_HOUR, LAST_HOUR):
            start = base.replace(hour=hour, minute=0, second=0, microsecond=0)
            out.append((start, start + timedelta(hours=2)))
    return out


async def seed(ctx: Context) -> SeedReport:
    now = ctx.now()
    password = await asyncio.to_thread(hash_password, ctx.settings.gameday_password)
    async with ctx.db.transaction() as conn:
        existing = set(
            (await conn.execute(sa.select(users.c.email).where(users.c.gameday.is_(True))))
            .scalars().all()
        )  # fmt: skip
        people = drill_users()
        for email, role, tier in people:
            if email not in existing:
                await conn.execute(
                    sa.insert(users).values(
                        email=email, password_hash=password, role=role.value, tier=tier.value,
                        gameday=True, created_at=now,
                    )
                )  # fmt: skip
        slot_count = await _seed_guides(conn, now)
    return SeedReport(NORMAL, PREMIUM, GUIDES, 1, slot_count, created=not existing)


async def _seed_guides(conn: AsyncConnection, now: datetime) -> int:
    guide_ids = dict(
        (await conn.execute(
            sa.select(users.c.email, users.c.id)
            .where(users.c.gameday.is_(True), users.c.role == Role.GUIDE.value)
        )).tuples().all()
    )  # fmt: skip
    owned = set(
        (await conn.execute(
            sa.select(resources.c.owner_user_id).where(resources.c.gameday.is_(True))
        )).scalars().all()
    )  # fmt: skip
    offered = overlapping_slots(now)
    for email, user_id in sorted(guide_ids.items()):
        if user_id in owned:
            continue
        result = await conn.execute(
            sa.insert(resources).values(
                kind="guide", name=f"Guide {email.split('@')[0][5:]}", owner_user_id=user_id,
                hourly_rate_cents=GUIDE_RATE_CENTS, gameday=True, created_at=now,
            )
        )  # fmt: skip
        resource_id = result.inserted_primary_key[0]  # type: ignore[index]
        await conn.execute(
            sa.insert(slots),
            [{"resource_id": resource_id, "starts_at": a, "ends_at": b} for a, b in offered],
        )
    # What is there, not what this run added: a second run adds nothing yet reports the same.
    tagged = sa.select(resources.c.id).where(resources.c.gameday.is_(True))
    count = sa.select(sa.func.count()).select_from(slots).where(slots.c.resource_id.in_(tagged))
    return int((await conn.execute(count)).scalar_one())


async def cleanup(ctx: Context) -> dict[str, int]:
    """Delete the tagged users and resources and every row that refers to them."""
    removed: dict[str, int] = {}
    async with ctx.db.transaction() as conn:
        tagged_users = sa.select(users.c.id).where(users.c.gameday.is_(True))
        tagged_resources = sa.select(resources.c.id).where(resources.c.gameday.is_(True))
        their_bookings = sa.select(bookings.c.id).where(
            sa.or_(
                bookings.c.user_id.in_(tagged_users), bookings.c.resource_id.in_(tagged_resources)
            )
        )
        their_payments = sa.select(payments.c.id).where(payments.c.booking_id.in_(their_bookings))
        # MariaDB refuses a subquery on the table being deleted from: materialise ids first.
        booking_ids = list((await conn.execute(their_bookings)).scalars())
        payment_ids = list((await conn.execute(their_payments)).scalars())
        user_ids = [str(u) for u in (await conn.execute(tagged_users)).scalars()]
        pt, keys = payment_transitions, idempotency_keys
        steps = [
            ("payment_transitions", sa.delete(pt).where(pt.c.payment_id.in_(payment_ids))),
            ("payments", sa.delete(payments).where(payments.c.id.in_(payment_ids))),
            ("outbox", sa.delete(outbox).where(outbox.c.booking_id.in_(booking_ids))),
            ("bookings", sa.delete(bookings).where(bookings.c.id.in_(booking_ids))),
            ("slots", sa.delete(slots).where(slots.c.resource_id.in_(tagged_resources))),
            ("resources", sa.delete(resources).where(resources.c.gameday.is_(True))),
            ("idempotency_keys", sa.delete(keys).where(keys.c.scope.in_(user_ids))),
            ("users", sa.delete(users).where(users.c.gameday.is_(True))),
        ]
        for name, statement in steps:
            removed[name] = int((await conn.execute(statement)).rowcount)
    return removed
