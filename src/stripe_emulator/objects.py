"""The emulator's state, as plain mutable records.

These hold what the emulator must remember; ``render`` turns them into Stripe-shaped JSON.
Keeping the two apart means the business rules read typed attributes instead of poking at
100-key dictionaries, and the wire shape is decided in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from stripe_emulator.cards import TestCard

JSON = dict[str, Any]


@dataclass(slots=True)
class Customer:
    id: str
    created: int
    email: str | None = None
    name: str | None = None
    phone: str | None = None
    description: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    deleted: bool = False


@dataclass(slots=True)
class PaymentMethod:
    id: str
    created: int
    card: TestCard
    exp_month: int = 12
    exp_year: int = 2034
    customer: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class PaymentIntent:
    id: str
    created: int
    amount: int
    currency: str
    client_secret: str
    status: str = "requires_payment_method"
    capture_method: str = "automatic"
    confirmation_method: str = "automatic"
    customer: str | None = None
    payment_method: str | None = None
    description: str | None = None
    receipt_email: str | None = None
    statement_descriptor: str | None = None
    setup_future_usage: str | None = None
    payment_method_types: list[str] = field(default_factory=lambda: ["card"])
    metadata: dict[str, str] = field(default_factory=dict)
    amount_capturable: int = 0
    amount_received: int = 0
    latest_charge: str | None = None
    last_payment_error: JSON | None = None
    next_action: JSON | None = None
    canceled_at: int | None = None
    cancellation_reason: str | None = None
    return_url: str | None = None


@dataclass(slots=True)
class Charge:
    id: str
    created: int
    amount: int
    currency: str
    payment_intent: str
    payment_method: str
    card: TestCard
    status: str
    captured: bool = False
    amount_captured: int = 0
    amount_refunded: int = 0
    customer: str | None = None
    description: str | None = None
    receipt_email: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    decline_code: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    refunds: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Refund:
    id: str
    created: int
    amount: int
    currency: str
    charge: str
    payment_intent: str
    reason: str | None = None
    status: str = "succeeded"
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class WebhookEndpoint:
    id: str
    created: int
    url: str
    secret: str
    enabled_events: list[str]
    description: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    status: str = "enabled"
    api_version: str | None = None

    def wants(self, event_type: str) -> bool:
        if self.status != "enabled":
            return False
        for pattern in self.enabled_events:
            if pattern in ("*", event_type):
                return True
            if pattern.endswith(".*") and event_type.startswith(pattern[:-1]):
                return True
        return False


@dataclass(slots=True)
class Event:
    id: str
    created: int
    type: str
    data: bytes
    """``{"object": ..., "previous_attributes": ...}`` as JSON."""
    request_id: str | None
    idempotency_key: str | None
    pending: set[str] = field(default_factory=set)
    """Endpoint ids still waiting for a successful delivery."""
    failed: set[str] = field(default_factory=set)
    """Endpoint ids whose delivery gave up after the retry window."""
