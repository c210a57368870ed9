"""Every failure a client can see, with a stable machine code and a human message.

The domain and services raise these; only ``api/errors.py`` maps them to HTTP status codes::

    BookingsError                       base: ``code`` + ``message`` (+ ``details``)
    ├── ClientError                     the caller can fix it (4xx)
    │   ├── NotFound                    no such booking/resource/payment (or not yours)
    │   ├── InvalidRequest              a value the domain refuses (bad range, unknown card)
    │   ├── Conflict                    the world disagrees with the request
    │   │   ├── SlotTaken               the range overlaps an active booking
    │   │   ├── HoldExpired             paying for a hold that is gone
    │   │   ├── AlreadyPaid             the booking's payment succeeded already
    │   │   ├── PaymentInProgress       another attempt for this booking is under way
    │   │   ├── IdempotencyInProgress   a request with this key is still executing
    │   │   └── FlagLocked              a safeguard flag cannot be flipped on the unsafe variant
    │   ├── IdempotencyMismatch         the key was used with another request body
    │   ├── PaymentDeclined             the card was declined
    │   ├── AuthError                   token missing, invalid or expired; bad credentials
    │   ├── Forbidden                   authenticated, but not allowed
    │   ├── RateLimited                 too many requests for this caller
    │   └── WebhookRejected             bad signature or stale timestamp
    └── Unavailable                     a dependency or capacity problem (503 + Retry-After)
        ├── DbUnavailable
        │   └── DbBusy                  deadlock / lock timeout: contention, not an outage
        ├── ProviderUnavailable
        │   └── ProviderServerError     a 5xx the provider may have saved under the key
        ├── CacheUnavailable            Redis down and the fallback flag is off
        └── Overloaded                  load shedding
"""

from __future__ import annotations

from typing import Any


class BookingsError(Exception):
    code = "internal_error"

    def __init__(self, message: str, *, code: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details


class ClientError(BookingsError):
    code = "bad_request"


class NotFound(ClientError):
    code = "not_found"


class InvalidRequest(ClientError):
    code = "invalid_request"


class Conflict(ClientError):
    code = "conflict"


class SlotTaken(Conflict):
    code = "slot_taken"

    def __init__(self) -> None:
        super().__init__("the requested range overlaps an active booking of this resource")


class HoldExpired(Conflict):
    code = "hold_expired"


class AlreadyPaid(Conflict):
    code = "booking_already_paid"


class PaymentInProgress(Conflict):
    code = "payment_in_progress"


class IdempotencyInProgress(Conflict):
    code = "idempotency_in_progress"

    def __init__(self) -> None:
        super().__init__("a request with this Idempotency-Key is still being processed; retry")


class FlagLocked(Conflict):
    code = "flag_locked"


class IdempotencyMismatch(ClientError):
    code = "idempotency_key_mismatch"

    def __init__(self) -> None:
        super().__init__("this Idempotency-Key was already used with a different request")


class PaymentDeclined(ClientError):
    code = "card_declined"


class AuthError(ClientError):
    code = "not_authenticated"


class Forbidden(ClientError):
    code = "forbidden"


class RateLimited(ClientError):
    code = "rate_limited"


class WebhookRejected(ClientError):
    code = "invalid_signature"


class Unavailable(BookingsError):
    code = "unavailable"
    retry_after_s = 1


class DbUnavailable(Unavailable):
    code = "db_unavailable"

    def __init__(self, message: str = "the database is unavailable; retry shortly") -> None:
        super().__init__(message)


class DbBusy(DbUnavailable):
    code = "db_busy"

    def __init__(self, message: str = "the database is busy; retry shortly") -> None:
        super().__init__(message)


class DbSaturated(DbBusy):
    """Every connection public traffic may use is taken: the rest of the pool is kept for
    admin calls, health checks and background work. Not worth retrying within the request."""

    def __init__(self, message: str = "the service is busy; retry shortly") -> None:
        super().__init__(message)


class ProviderUnavailable(Unavailable):
    code = "payment_provider_unavailable"
    retry_after_s = 2

    def __init__(self, message: str = "the payment provider is unavailable; retry") -> None:
        super().__init__(message)


class ProviderServerError(ProviderUnavailable):
    """The provider answered 5xx without ``Stripe-Should-Retry: true``: Stripe may have
    saved that answer under the idempotency key and would replay it for 24 hours, so the
    next attempt must use a new key (the payment's key generation moves on)."""


class CacheUnavailable(Unavailable):
    code = "cache_unavailable"

    def __init__(self) -> None:
        super().__init__("the cache is unavailable and the fallback is disabled")


class CheckoutFrozen(Unavailable):
    code = "checkout_frozen"
    retry_after_s = 60

    def __init__(self) -> None:
        super().__init__("checkout is paused while an incident is handled; retry later")


class Overloaded(Unavailable):
    code = "overloaded"

    def __init__(self) -> None:
        super().__init__("the service is at capacity; retry shortly")
