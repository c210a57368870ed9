"""The schema as SQLAlchemy Core tables: the one description queries and migrations share.

The last-line constraints that differ between PostgreSQL and MariaDB (the exclusion
constraint, the generated "active" column) are created by the migration, not here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.mysql import DATETIME
from sqlalchemy.engine import Dialect


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Aware UTC datetimes on every dialect (MariaDB's DATETIME has no zone of its own)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(DATETIME(fsp=6))
        return dialect.type_descriptor(sa.DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name in ("mysql", "mariadb") else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s",
    }
)
Id = sa.BigInteger()

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("email", sa.String(254), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("tier", sa.String(16), nullable=False, server_default="normal"),
    sa.Column("gameday", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", UTCDateTime, nullable=False),
    # Access and refresh tokens issued before this are refused (NULL: none revoked).
    sa.Column("tokens_valid_after", UTCDateTime, nullable=True),
    # Set while the account is locked: logins are refused (403 account_locked).
    sa.Column("locked_at", UTCDateTime, nullable=True),
    sa.Index("ix_users_tokens_valid_after", "tokens_valid_after"),
)

resources = sa.Table(
    "resources",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("owner_user_id", Id, sa.ForeignKey("users.id"), nullable=True),
    sa.Column("hourly_rate_cents", sa.Integer, nullable=False),
    sa.Column("gameday", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

slots = sa.Table(
    "slots",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("resource_id", Id, sa.ForeignKey("resources.id"), nullable=False),
    sa.Column("starts_at", UTCDateTime, nullable=False),
    sa.Column("ends_at", UTCDateTime, nullable=False),
    sa.Index("ix_slots_resource_start", "resource_id", "starts_at"),
)

bookings = sa.Table(
    "bookings",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("resource_id", Id, sa.ForeignKey("resources.id"), nullable=False),
    sa.Column("user_id", Id, sa.ForeignKey("users.id"), nullable=False),
    sa.Column("starts_at", UTCDateTime, nullable=False),
    sa.Column("ends_at", UTCDateTime, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("amount_cents", sa.Integer, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("hold_expires_at", UTCDateTime, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Index("ix_bookings_resource_start", "resource_id", "starts_at"),
    sa.Index("ix_bookings_status_hold", "status", "hold_expires_at"),
    sa.Index("ix_bookings_user", "user_id"),
)

payments = sa.Table(
    "payments",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("booking_id", Id, sa.ForeignKey("bookings.id"), nullable=False),
    sa.Column("provider_intent_id", sa.String(255), nullable=True),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("amount_cents", sa.Integer, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("decline_code", sa.String(64), nullable=True),
    sa.Column("needs_refund", sa.Boolean, nullable=False, server_default=sa.false()),
    # Part of every provider idempotency key; moves on after a provider 5xx (see
    # errors.ProviderServerError), never after an unknown outcome.
    sa.Column("key_generation", sa.Integer, nullable=False, server_default="0"),
    # Random, per payment: makes its provider keys unique across databases sharing one
    # provider account (NULL on rows from before it existed: their keys use the id).
    sa.Column("key_seed", sa.String(32), nullable=True),
    sa.Column("lease_until", UTCDateTime, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Index("ix_payments_booking", "booking_id"),
    sa.Index("ix_payments_intent", "provider_intent_id"),
    sa.Index("ix_payments_needs_refund", "needs_refund"),
)

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("scope", sa.String(64), primary_key=True),
    sa.Column("idem_key", sa.String(255), primary_key=True),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("response_status", sa.Integer, nullable=True),
    sa.Column("response_body", sa.Text, nullable=True),
    sa.Column("locked_until", UTCDateTime, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index("ix_idempotency_keys_created", "created_at"),
)

webhook_events = sa.Table(
    "webhook_events",
    metadata,
    sa.Column("id", sa.String(255), primary_key=True),
    sa.Column("type", sa.String(100), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("deliveries", sa.Integer, nullable=False),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("received_at", UTCDateTime, nullable=False),
    sa.Column("processed_at", UTCDateTime, nullable=True),
    sa.Index("ix_webhook_events_status", "status"),
)

# Every application of a payment state change, one row each: the audit that shows whether
# an event was applied once or many times.
payment_transitions = sa.Table(
    "payment_transitions",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("payment_id", Id, sa.ForeignKey("payments.id"), nullable=False),
    sa.Column("from_status", sa.String(32), nullable=False),
    sa.Column("to_status", sa.String(32), nullable=False),
    sa.Column("source", sa.String(128), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Index("ix_payment_transitions_payment", "payment_id"),
)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("dedup_key", sa.String(255), nullable=True, unique=True),
    sa.Column("booking_id", Id, sa.ForeignKey("bookings.id"), nullable=True),
    sa.Column("recipient", sa.String(254), nullable=False),
    sa.Column("subject", sa.String(255), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", UTCDateTime, nullable=False),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("sent_at", UTCDateTime, nullable=True),
    sa.Index("ix_outbox_due", "status", "next_attempt_at"),
)

feature_flags = sa.Table(
    "feature_flags",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("updated_by", sa.String(64), nullable=False),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("subject", sa.String(128), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
)

# One row per request: who (user, source address) asked for what (method, route template)
# and got what. No query strings, bodies or headers. Written in batches, pruned by age.
access_log = sa.Table(
    "access_log",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("source", sa.String(64), nullable=False),
    sa.Column("method", sa.String(8), nullable=False),
    sa.Column("route", sa.String(200), nullable=False),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("user_id", Id, nullable=True),
    # When the request's token was issued: a use after a revocation with a token from
    # before it is a dead token still in flight, not a live one.
    sa.Column("token_issued_at", UTCDateTime, nullable=True),
    sa.Column("duration_ms", sa.Float, nullable=False),
    sa.Column("request_id", sa.String(64), nullable=False),
    sa.Index("ix_access_log_source_at", "source", "at"),
    sa.Index("ix_access_log_user_at", "user_id", "at"),
    sa.Index("ix_access_log_at", "at"),
)
