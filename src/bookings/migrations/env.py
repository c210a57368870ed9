"""Alembic's entry point. The caller hands over an open connection (see ``schema.py``), so
migrations run on the same async engine, driver and settings as the service."""

from __future__ import annotations

from alembic import context

from bookings.adapters.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `bookings migrate`, which provides the connection")

context.configure(connection=connection, target_metadata=metadata, compare_type=True)
with context.begin_transaction():
    context.run_migrations()
