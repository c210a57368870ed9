"""The database's last line of defence, per dialect, as data the migration and checks share.

PostgreSQL gets an exclusion constraint: no two active bookings of one resource whose
``[starts_at, ends_at)`` ranges overlap. MariaDB has no such constraint; there a generated
column is 1 for active bookings and NULL otherwise, and unique keys over it refuse two
active bookings of a resource with the same start or the same end (NULLs never collide).
Partial overlaps on MariaDB are kept out by the resource row lock. Both dialects refuse a
second payment row for one booking.

The unsafe variant drops these (``drop_all``) so that the harness can prove its checkers
catch what they would let through; the safe service refuses to start without them.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection


@dataclass(frozen=True, slots=True)
class Constraint:
    name: str
    table: str
    create: tuple[str, ...]
    drop: tuple[str, ...]


POSTGRES = (
    Constraint(
        "bookings_no_overlap",
        "bookings",
        (
            "CREATE EXTENSION IF NOT EXISTS btree_gist",
            "ALTER TABLE bookings ADD CONSTRAINT bookings_no_overlap EXCLUDE USING gist "
            "(resource_id WITH =, tstzrange(starts_at, ends_at, '[)') WITH &&) "
            "WHERE (status IN ('held', 'confirmed'))",
        ),
        ("ALTER TABLE bookings DROP CONSTRAINT IF EXISTS bookings_no_overlap",),
    ),
    Constraint(
        "uq_payments_booking",
        "payments",
        ("CREATE UNIQUE INDEX uq_payments_booking ON payments (booking_id)",),
        ("DROP INDEX IF EXISTS uq_payments_booking",),
    ),
)

MARIADB = (
    Constraint(
        "uq_bookings_active_start",
        "bookings",
        (
            "ALTER TABLE bookings ADD COLUMN active_marker TINYINT AS "
            "(IF(status IN ('held', 'confirmed'), 1, NULL)) PERSISTENT",
            "CREATE UNIQUE INDEX uq_bookings_active_start "
            "ON bookings (resource_id, starts_at, active_marker)",
        ),
        ("DROP INDEX IF EXISTS uq_bookings_active_start ON bookings",),
    ),
    Constraint(
        "uq_bookings_active_end",
        "bookings",
        (
            "CREATE UNIQUE INDEX uq_bookings_active_end "
            "ON bookings (resource_id, ends_at, active_marker)",
        ),
        ("DROP INDEX IF EXISTS uq_bookings_active_end ON bookings",),
    ),
    Constraint(
        "uq_payments_booking",
        "payments",
        ("CREATE UNIQUE INDEX uq_payments_booking ON payments (booking_id)",),
        ("DROP INDEX IF EXISTS uq_payments_booking ON payments",),
    ),
)


def for_dialect(dialect: str) -> tuple[Constraint, ...]:
    return POSTGRES if dialect == "postgresql" else MARIADB


async def present(conn: AsyncConnection) -> set[str]:
    """Names of the last-line constraints and unique indexes the database has now."""

    def read(sync_conn: sa.Connection) -> set[str]:
        inspector = sa.inspect(sync_conn)
        names: set[str] = set()
        for table in ("bookings", "payments"):
            names.update(str(ix["name"]) for ix in inspector.get_indexes(table) if ix["unique"])
            names.update(
                str(uq["name"]) for uq in inspector.get_unique_constraints(table) if uq["name"]
            )
        if sync_conn.dialect.name == "postgresql":
            rows = sync_conn.execute(
                sa.text("SELECT conname FROM pg_constraint WHERE contype = 'x'")
            )
            names.update(str(row[0]) for row in rows)
        return names

    return await conn.run_sync(read)


async def missing(conn: AsyncConnection) -> list[str]:
    have = await present(conn)
    return [c.name for c in for_dialect(conn.dialect.name) if c.name not in have]


async def drop_all(conn: AsyncConnection) -> None:
    for constraint in for_dialect(conn.dialect.name):
        for statement in constraint.drop:
            await conn.execute(sa.text(statement))
