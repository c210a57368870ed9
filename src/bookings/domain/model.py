"""Resources, time ranges and bookings, with the booking status rules."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bookings.errors import InvalidRequest


class Role(enum.StrEnum):
    CUSTOMER = "customer"
    GUIDE = "guide"
    ADMIN = "admin"


class Tier(enum.StrEnum):
    NORMAL = "normal"
    PREMIUM = "premium"


class BookingStatus(enum.StrEnum):
    HELD = "held"
    CONFIRMED = "confirmed"
    EXPIRED = "expired"
    CANCELED = "canceled"


ACTIVE = frozenset({BookingStatus.HELD, BookingStatus.CONFIRMED})

# Which booking transitions exist. EXPIRED -> CONFIRMED is the late payment whose range is
# still free; every other way out of EXPIRED or CANCELED is refused.
_BOOKING_MOVES = {
    BookingStatus.HELD: {BookingStatus.CONFIRMED, BookingStatus.EXPIRED, BookingStatus.CANCELED},
    BookingStatus.CONFIRMED: {BookingStatus.CANCELED},
    BookingStatus.EXPIRED: {BookingStatus.CONFIRMED},
    BookingStatus.CANCELED: set(),
}


def can_move(current: BookingStatus, target: BookingStatus) -> bool:
    return target in _BOOKING_MOVES[current]


@dataclass(frozen=True, slots=True)
class TimeRange:
    """A half-open range ``[starts_at, ends_at)`` in UTC."""

    starts_at: datetime
    ends_at: datetime

    def __post_init__(self) -> None:
        if self.starts_at.tzinfo is None or self.ends_at.tzinfo is None:
            raise InvalidRequest("times must carry a UTC offset", code="naive_datetime")
        if self.ends_at <= self.starts_at:
            raise InvalidRequest("ends_at must be after starts_at", code="invalid_range")
        try:  # 0001-01-01T00:00+01:00 or 9999-12-31T23:00-01:00 has no UTC datetime
            starts_at, ends_at = self.starts_at.astimezone(UTC), self.ends_at.astimezone(UTC)
        except OverflowError:
            raise InvalidRequest("the times are out of range", code="invalid_range") from None
        object.__setattr__(self, "starts_at", starts_at)
        object.__setattr__(self, "ends_at", ends_at)

    def overlaps(self, other: TimeRange) -> bool:
        return self.starts_at < other.ends_at and other.starts_at < self.ends_at

    @property
    def duration(self) -> timedelta:
        return self.ends_at - self.starts_at


def check_bookable(span: TimeRange, now: datetime, *, max_days: int, horizon_days: int) -> None:
    """Refuse ranges no customer could mean: over, too long, or too far ahead."""
    if span.ends_at <= now:
        raise InvalidRequest("the range is in the past", code="range_in_past")
    if span.duration > timedelta(days=max_days):
        raise InvalidRequest(f"a booking lasts at most {max_days} days", code="range_too_long")
    if span.starts_at > now + timedelta(days=horizon_days):
        raise InvalidRequest(
            f"bookings open at most {horizon_days} days ahead", code="range_too_far"
        )


def price_cents(span: TimeRange, hourly_rate_cents: int) -> int:
    """Started hours are charged in full; Stripe's minimum of 50 cents applies."""
    hours = math.ceil(span.duration.total_seconds() / 3600)
    return max(50, hours * hourly_rate_cents)


@dataclass(frozen=True, slots=True)
class Booking:
    id: int
    resource_id: int
    user_id: int
    span: TimeRange
    status: BookingStatus
    amount_cents: int
    currency: str
    hold_expires_at: datetime

    def is_live_hold(self, now: datetime) -> bool:
        return self.status is BookingStatus.HELD and self.hold_expires_at > now
