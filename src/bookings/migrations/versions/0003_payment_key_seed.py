"""payments.key_seed: a random part of every provider idempotency key of the payment

Keys derived from the payment's id alone collide when two databases share one provider
account (a restored or reset database, staging and a test run): the provider then answers
the other database's PaymentIntent, or refuses the request. Rows from before this column
keep their id-based keys (``key_seed`` NULL), so payments in flight across the upgrade
still retry under the same keys.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("payments", sa.Column("key_seed", sa.String(32), nullable=True))


def downgrade() -> None:
    op.drop_column("payments", "key_seed")
