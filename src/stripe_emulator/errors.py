"""Stripe's error envelope, as exceptions the handlers raise.

Every failure the emulator reports travels as one of these and is rendered once, in the
HTTP layer, into Stripe's envelope ``{"error": {"type", "code", "decline_code", "message",
"param", ...}}`` with Stripe's status code, so the official SDK maps it to the same
exception class it would raise against Stripe::

    EmulatorError                      (base: any error the emulator answers with)
    ├── InvalidRequestError   400/404  type=invalid_request_error (also resource_missing)
    │   └── ValidationError   400      raised before execution: no idempotent result saved
    ├── IdempotencyError      400      type=idempotency_error (key reused with other params)
    ├── KeyInUseError         409      a request with the same key is still executing
    ├── AuthenticationError   401      missing, malformed or live-mode key
    ├── CardError             402      type=card_error with decline_code
    ├── RateLimitError        429      injected rate limiting
    └── ApiError              500      injected server failure
"""

from __future__ import annotations

from typing import Any


class EmulatorError(Exception):
    """Base of every error rendered in Stripe's envelope."""

    status = 500
    type = "api_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        decline_code: str | None = None,
        extra: dict[str, Any] | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param
        self.decline_code = decline_code
        self.extra = extra or {}
        if status is not None:
            self.status = status

    def envelope(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.code is not None:
            body["code"] = self.code
            body["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        if self.param is not None:
            body["param"] = self.param
        if self.decline_code is not None:
            body["decline_code"] = self.decline_code
        body.update(self.extra)
        return {"error": body}


class InvalidRequestError(EmulatorError):
    status = 400
    type = "invalid_request_error"


class ValidationError(InvalidRequestError):
    """A parameter failed validation: the endpoint never began executing."""


class ResourceMissingError(InvalidRequestError):
    status = 404

    def __init__(self, kind: str, object_id: str, param: str = "id") -> None:
        super().__init__(f"No such {kind}: '{object_id}'", code="resource_missing", param=param)


class IdempotencyError(EmulatorError):
    status = 400
    type = "idempotency_error"


class KeyInUseError(InvalidRequestError):
    status = 409


class AuthenticationError(InvalidRequestError):
    status = 401


class CardError(EmulatorError):
    status = 402
    type = "card_error"


class RateLimitError(EmulatorError):
    status = 429
    type = "invalid_request_error"


class ApiError(EmulatorError):
    status = 500
    type = "api_error"
