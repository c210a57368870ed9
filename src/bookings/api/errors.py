"""The one place where errors become HTTP: status code, ``{"error", "message"}`` body, headers.

Client mistakes are 4xx with a stable machine code; dependency trouble is 503 with
``Retry-After``. Anything unexpected is a logged 500 ``internal_error`` with no details,
answered by the request middleware (``middleware.RequestContext``).
"""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from bookings import errors as e
from bookings.api.middleware import INTERNAL_ERROR

log = structlog.get_logger(__name__)

_STATUS: list[tuple[type[e.BookingsError], int]] = [
    (e.NotFound, 404),
    (e.InvalidRequest, 422),
    (e.IdempotencyMismatch, 422),
    (e.Conflict, 409),
    (e.PaymentDeclined, 402),
    (e.AuthError, 401),
    (e.Forbidden, 403),
    (e.RateLimited, 429),
    (e.WebhookRejected, 400),
    (e.ClientError, 400),
    (e.Unavailable, 503),
]
_HTTP_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def status_of(error: e.BookingsError) -> int:
    return next((status for kind, status in _STATUS if isinstance(error, kind)), 500)


def body_of(error: e.BookingsError) -> dict[str, Any]:
    body: dict[str, Any] = {"error": error.code, "message": error.message}
    details = {k: v for k, v in error.details.items() if k != "retry_after_s"}
    if details:
        body["details"] = details
    return body


def headers_of(error: e.BookingsError) -> dict[str, str]:
    if isinstance(error, e.Unavailable):
        return {"Retry-After": str(error.retry_after_s)}
    if isinstance(error, e.RateLimited):
        return {"Retry-After": str(error.details.get("retry_after_s", 1))}
    if isinstance(error, e.AuthError):
        return {"WWW-Authenticate": "Bearer"}
    if isinstance(error, e.Conflict) and error.code.endswith("in_progress"):
        return {"Retry-After": "1"}
    return {}


def error_response(error: e.BookingsError) -> JSONResponse:
    return JSONResponse(body_of(error), status_of(error), headers=headers_of(error))


async def _bookings_error(_: Request, error: e.BookingsError) -> JSONResponse:
    if isinstance(error, e.Unavailable):
        cause = error.__cause__
        log.warning(
            "unavailable",
            code=error.code,
            cause=type(cause).__name__ if cause else None,
            detail=str(getattr(cause, "orig", cause))[:200] if cause else None,
        )
    return error_response(error)


async def _validation_error(_: Request, error: RequestValidationError) -> JSONResponse:
    problems = [
        {"field": ".".join(str(p) for p in item.get("loc", ())), "problem": item.get("msg", "")}
        for item in error.errors()
    ]
    body = {"error": "validation_error", "message": "the request is not valid", "details": problems}
    return JSONResponse(body, 422)


async def _http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
    code = _HTTP_CODES.get(error.status_code, "http_error")
    return JSONResponse(
        {"error": code, "message": str(error.detail)}, error.status_code, headers=error.headers
    )


async def _bookings_error_unsafe(request: Request, error: e.BookingsError) -> JSONResponse:
    """The unsafe variant answers as a service without this module would: a database outage
    escapes as a 500, which scenario 4 ("a clear 503, never a 500") must catch."""
    if isinstance(error, e.DbUnavailable):
        log.error("unhandled database error (unsafe variant)", code=error.code)
        return JSONResponse(INTERNAL_ERROR, 500)
    return await _bookings_error(request, error)


def install(app: FastAPI, *, unsafe: bool = False) -> None:
    # Starlette types handlers as taking any Exception; each of these gets only its own kind.
    handler = _bookings_error_unsafe if unsafe else _bookings_error
    app.add_exception_handler(e.BookingsError, handler)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
