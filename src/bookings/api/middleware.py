"""Pure ASGI middleware (no per-request task or body buffering): correlation ids, access
logs, request metrics, and load shedding."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Sequence

import orjson
import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bookings.observability.metrics import Metrics

log = structlog.get_logger("bookings.access")
INTERNAL_ERROR = {"error": "internal_error", "message": "an unexpected error occurred"}
OVERLOADED = {"error": "overloaded", "message": "the service is at capacity; retry shortly"}
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_UNSHED = ("/health/", "/metrics")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def _send_json(
    send: Send, status: int, body: dict[str, str], headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    raw = orjson.dumps(body)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(raw)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": raw})


class RequestContext:
    """Correlation id on every log line and response; one access line and metrics per request.

    ``X-Request-ID`` is accepted from the caller when it is a sane token (so a trace can
    cross services) and generated otherwise; it is echoed back either way.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = _header(scope, b"x-request-id")
        req_id = given if given and _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(req_id=req_id)
        started = time.perf_counter()
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", req_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # Answered here rather than by Starlette's outermost handler, which re-raises
            # to the server and so drops the connection after the 500.
            log.exception("unhandled error")
            if status:
                raise
            await _send_json(send_with_id, 500, INTERNAL_ERROR)
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", "unmatched")
            method = scope["method"]
            self.metrics.requests.labels(route, method, str(status)).inc()
            self.metrics.latency.labels(route, method).observe(elapsed)
            log.info(
                "request",
                method=method,
                route=route,
                status=status,
                duration_ms=round(elapsed * 1000, 2),
            )
            structlog.contextvars.clear_contextvars()


class LoadShedding:
    """At most ``limit`` requests in flight per worker; the next one gets a fast 503.

    A worker that queues without bound turns a slow dependency into a latency disaster
    for everyone; refusing early keeps the accepted requests fast and tells clients (and
    load balancers) to back off. Health and metrics stay reachable.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics, limit: int) -> None:
        self.app = app
        self.metrics = metrics
        self.limit = limit
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(_UNSHED):
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            self.metrics.shed.inc()
            await _send_json(send, 503, OVERLOADED, [(b"retry-after", b"1")])
            return
        self.in_flight += 1
        self.metrics.in_flight.set(self.in_flight)
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
            self.metrics.in_flight.set(self.in_flight)
