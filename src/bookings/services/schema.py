"""Schema management: Alembic migrations and the last-line constraint check.

Migrations run through an async engine's connection handed to Alembic, so there is one
driver and one set of connection settings for the service, the CLI and the tests.

Alembic is imported where it is used: a serving worker never migrates, and importing it
(with Mako and Pygments behind it) is a quarter of a second of every worker's start.
"""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bookings.adapters import constraints

if TYPE_CHECKING:
    from alembic.config import Config


def alembic_config() -> Config:
    from alembic.config import Config  # noqa: PLC0415 - see the module docstring

    config = Config()
    config.set_main_option("script_location", str(resources.files("bookings") / "migrations"))
    return config


def _run(sync_conn: sa.Connection, revision: str, down: bool) -> None:
    from alembic import command  # noqa: PLC0415 - see the module docstring

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
            from alembic.runtime.migration import MigrationContext  # noqa: PLC0415

            return MigrationContext.configure(sync_conn).get_current_revision()

        return await conn.run_sync(read)


async def missing_constraints(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        return await constraints.missing(conn)


async def drop_constraints(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await constraints.drop_all(conn)
