"""Account lock (users.locked_at)

Revoking tokens refuses what was issued; it cannot stop someone who knows the password from
logging in again. A locked account is refused at login (403 ``account_locked``) until an
operator unlocks it, which is containment for a leaked password until the owner resets it.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

# Frozen here rather than imported from tables.py, so this revision never changes meaning.
UTC_DATETIME = sa.DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("users", sa.Column("locked_at", UTC_DATETIME, nullable=True))


def downgrade() -> None:
    op.drop_column("users", "locked_at")
