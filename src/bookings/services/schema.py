"""Schema management: Alembic migrations and the last-line constraint check.

Migrations run through an async engine's connection handed to Alembic, so there is one
driver and one set of connection settings for the service, the CLI and the tests.
"""

from __future__ import annotations

from importlib import resources

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy.ext.asyncio import AsyncEngine

from bookings.adapters import constraints


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(resources.files("bookings") / "migrations"))
    return config


def _run(sync_conn: sa.Connection, revision: str, down: bool) -> None:
    config = alembic_config()
    config.attributes["connection"] = sync_conn
    if down:
        command.downgrade(config, revision)
    else:
        command.upgrade(config, revision)


async def migrate(engine: AsyncEngine, revision: str = "head") -> None:
    async with engine.begin() as conn:
        await conn.run_sync(_run, revision, False)


async def downgrade(engine: AsyncEngine, revision: str = "base") -> None:
    async with engine.begin() as conn:
        await conn.run_sync(_run, revision, True)


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:

        def read(sync_conn: sa.Connection) -> str | None:
            return MigrationContext.configure(sync_conn).get_current_revision()

        return await conn.run_sync(read)


async def missing_constraints(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        return await constraints.missing(conn)


async def drop_constraints(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await constraints.drop_all(conn)
