"""The final state the checkers judge, as plain typed rows read once at the edge.

Checkers never see a connection or an SDK object: the readers (``readers.py``) turn the
target's tables and the provider's PaymentIntents into these rows, so every checker is a
pure function a test can feed by hand, and a target with another schema only needs SQL
that returns the same columns.

``FinalState.errors`` is how a reader says "this input is missing or partial". Each entry
starts with the source it concerns (a table name, ``provider``, or ``database`` for all of
the tables at once), so a checker asks ``state.missing("payments", "provider")`` and
answers UNKNOWN for what it could not see instead of passing on an empty list.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

TABLES = ("bookings", "payments", "payment_transitions", "webhook_events", "outbox")
"""The database sources; an error from ``database`` concerns all of them."""
ACTIVE_BOOKING = frozenset({"held", "confirmed"})
PAID = frozenset({"succeeded", "refunded"})
"""Internal payment statuses that mean the customer's money was taken (refunded after)."""


@dataclass(frozen=True, slots=True)
class BookingRow:
    id: int
    resource_id: int
    user_id: int
    starts_at: datetime
    ends_at: datetime
    status: str
    hold_expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class PaymentRow:
    id: int
    booking_id: int
    status: str
    provider_intent_id: str | None
    amount_cents: int
    needs_refund: bool = False
    updated_at: datetime | None = None
    """When the status last moved: how long a payment has been stuck."""


@dataclass(frozen=True, slots=True)
class TransitionRow:
    payment_id: int
    from_status: str
    to_status: str
    source: str
    """``event:<id>`` for a webhook event, ``confirm:<intent>``, ``reconcile``…"""
    at: datetime | None = None


@dataclass(frozen=True, slots=True)
class EventRow:
    id: str
    type: str
    status: str
    attempts: int = 0
    deliveries: int = 0


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    kind: str
    booking_id: int | None
    dedup_key: str | None = None
    status: str = ""


@dataclass(frozen=True, slots=True)
class IntentRow:
    """A PaymentIntent as the provider reports it. A refund leaves an intent ``succeeded``
    (Stripe's model); the refund shows on its charge, hence ``amount_refunded``."""

    id: str
    status: str
    amount: int
    amount_refunded: int = 0
    refunded: bool = False
    """Fully refunded."""
    metadata: Mapping[str, str] = field(default_factory=dict)
    created: int = 0
    currency: str = ""

    @property
    def booking_id(self) -> int | None:
        """The logical order this intent was created for, if it says so."""
        raw = self.metadata.get("booking_id", "")
        return int(raw) if raw.isdigit() else None


@dataclass(frozen=True)
class FinalState:
    bookings: list[BookingRow] = field(default_factory=list)
    payments: list[PaymentRow] = field(default_factory=list)
    transitions: list[TransitionRow] = field(default_factory=list)
    events: list[EventRow] = field(default_factory=list)
    outbox: list[OutboxRow] = field(default_factory=list)
    intents: list[IntentRow] = field(default_factory=list)
    read_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    errors: list[str] = field(default_factory=list)
    """``"<source>: what went wrong"``; see the module docstring."""

    def missing(self, *sources: str) -> list[str]:
        """The errors that concern any of ``sources``."""
        wanted = set(sources)
        if wanted & set(TABLES):
            wanted.add("database")
        return [e for e in self.errors if e.split(":", 1)[0].strip() in wanted]
