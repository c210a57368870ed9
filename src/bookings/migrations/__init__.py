"""Alembic migrations; ``bookings.services.schema`` runs them (no alembic.ini needed)."""
