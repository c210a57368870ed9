"""The database adapter's reading of errors, against real PostgreSQL and MariaDB."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa

from bookings.adapters.breaker import BreakerState, CircuitBreaker
from bookings.adapters.db import Database
from bookings.errors import DbBusy
from bookings.settings import Settings
from tests.bookings.support import ScratchDatabase, World, run


def test_a_deadlock_inside_a_savepoint_is_contention_not_an_outage(
    db: ScratchDatabase, world: World
) -> None:
    """Two transactions lock two rows in opposite orders inside savepoints. MariaDB rolls
    the loser's whole transaction back, so its savepoint's rollback fails too; the loser
    must still read as ``DbBusy`` (503, retry) with the breaker closed, not as an outage."""
    breaker = CircuitBreaker("db", failures=1, reset_s=60)
    database = Database(Settings(database_url=db.url, environment="test"), breaker)
    first, second = world.resource, world.other_resource
    update = sa.text("UPDATE resources SET name = name WHERE id = :id")

    async def cross(a: int, b: int, gate: asyncio.Barrier) -> None:
        async with database.transaction() as conn, conn.begin_nested():
            await conn.execute(update, {"id": a})
            await gate.wait()
            await conn.execute(update, {"id": b})

    async def both() -> tuple[BaseException | None, ...]:
        gate = asyncio.Barrier(2)
        try:
            return await asyncio.gather(cross(first, second, gate), cross(second, first, gate),
                                        return_exceptions=True)  # fmt: skip
        finally:
            await database.close()

    outcomes = run(both())
    losers = [o for o in outcomes if o is not None]
    assert len(losers) == 1, outcomes
    assert isinstance(losers[0], DbBusy), repr(losers[0])
    assert breaker.state is BreakerState.CLOSED
