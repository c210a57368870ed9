"""Request and response bodies, as published in ``/openapi.json``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from bookings.domain.model import Booking
from bookings.services.payments import PaymentResult

Id = Annotated[int, Field(ge=1, le=2**53)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TokenRequest(Strict):
    # No NUL: PostgreSQL cannot store or compare it, which would turn a typo into a 500.
    email: str = Field(min_length=3, max_length=254, pattern=r"^[^\x00]+$")
    password: str = Field(min_length=1, max_length=200)
    ttl_s: float | None = Field(
        default=None, gt=0, le=86_400, description="Shorter access-token life (drills)."
    )


class RefreshRequest(Strict):
    refresh_token: str = Field(min_length=1, max_length=4096)
    ttl_s: float | None = Field(default=None, gt=0, le=86_400)


class TokenResponse(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth token type, not a secret
    expires_in: float


class HoldRequest(Strict):
    resource_id: Id
    starts_at: AwareDatetime
    ends_at: AwareDatetime


class BookingOut(BaseModel):
    id: int
    resource_id: int
    status: str
    starts_at: datetime
    ends_at: datetime
    amount_cents: int
    currency: str
    hold_expires_at: datetime

    @classmethod
    def of(cls, b: Booking) -> BookingOut:
        return cls(
            id=b.id,
            resource_id=b.resource_id,
            status=b.status.value,
            starts_at=b.span.starts_at,
            ends_at=b.span.ends_at,
            amount_cents=b.amount_cents,
            currency=b.currency,
            hold_expires_at=b.hold_expires_at,
        )


class PaymentRequest(Strict):
    payment_method: str = Field(
        min_length=1,
        max_length=120,
        description="A pm_... id or a Stripe test card number (4242…, 9995, 3220).",
    )


class PaymentOut(BaseModel):
    payment_id: int
    booking_id: int
    status: str
    booking_status: str
    amount_cents: int
    currency: str
    payment_intent: str | None
    next_action_url: str | None = None

    @classmethod
    def of(cls, r: PaymentResult) -> PaymentOut:
        return cls(
            payment_id=r.payment_id,
            booking_id=r.booking_id,
            status=r.status.value,
            booking_status=r.booking_status.value,
            amount_cents=r.amount_cents,
            currency=r.currency,
            payment_intent=r.intent_id,
            next_action_url=r.next_action_url,
        )


class ResourceOut(BaseModel):
    id: int
    kind: str
    name: str
    hourly_rate_cents: int


class ErrorOut(BaseModel):
    error: str = Field(description="Stable machine-readable code.")
    message: str
    details: Any = None


class FlagUpdate(Strict):
    enabled: bool


class RevokeRequest(Strict):
    reason: str = Field(default="", max_length=200, pattern=r"^[^\x00]*$")


class WebhookAck(BaseModel):
    received: bool = True
    outcome: str


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (400, 401, 402, 403, 404, 409, 422, 429, 503)
}
