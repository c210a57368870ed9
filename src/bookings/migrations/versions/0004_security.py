"""Token revocation (users.tokens_valid_after) and the access log

A JWT cannot be recalled once issued; refusing the tokens a user was issued before a
moment is what "revoke this user's tokens" can mean without a session table on the hot
path. The access log keeps who asked for what, from which address, so an incident can
answer "what did this source do" from data rather than from scattered log files.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

# Frozen here rather than imported from tables.py, so this revision never changes meaning.
UTC_DATETIME = sa.DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("users", sa.Column("tokens_valid_after", UTC_DATETIME, nullable=True))
    op.create_index("ix_users_tokens_valid_after", "users", ["tokens_valid_after"])
    op.create_table(
        "access_log",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("at", UTC_DATETIME, nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("route", sa.String(length=200), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=True),
        sa.Column("token_issued_at", UTC_DATETIME, nullable=True),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_access_log_source_at", "access_log", ["source", "at"])
    op.create_index("ix_access_log_user_at", "access_log", ["user_id", "at"])
    op.create_index("ix_access_log_at", "access_log", ["at"])


def downgrade() -> None:
    op.drop_table("access_log")
    op.drop_index("ix_users_tokens_valid_after", table_name="users")
    op.drop_column("users", "tokens_valid_after")
