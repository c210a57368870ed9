"""Pure ASGI middleware (no body buffering): correlation ids, access logs (a log line and
an access_log row), request metrics, load shedding and the request deadline (which runs
each request as a task of its own, so the answer can leave at the deadline while the work
finishes)."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import orjson
import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bookings.adapters.access_log import AccessLog, Entry
from bookings.adapters.db import public_lane
from bookings.observability.metrics import Metrics

log = structlog.get_logger("bookings.access")
INTERNAL_ERROR = {"error": "internal_error", "message": "an unexpected error occurred"}
OVERLOADED = {"error": "overloaded", "message": "the service is at capacity; retry shortly"}
DEADLINE = {"error": "deadline_exceeded", "message": "the request took too long; retry shortly"}
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
# Health checks and scrapes: never shed, never in the access log (a scraper would drown it).
_OPERATIONAL = ("/health/", "/metrics")
# Requests that may use the database connections kept back from public traffic (db.py).
_MAY_USE_RESERVE = (*_OPERATIONAL, "/admin/")


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

    def __init__(self, app: ASGIApp, metrics: Metrics, access: AccessLog | None = None) -> None:
        self.app = app
        self.metrics = metrics
        self.access = access

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
        recorded = False
        # The dict behind request.state, where authentication names the user.
        state = scope.setdefault("state", {})

        def record() -> None:
            """Once per request, before its last byte leaves: a client that reads /metrics
            right after its answer sees that answer counted."""
            nonlocal recorded
            if recorded:
                return
            recorded = True
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", "unmatched")
            method = scope["method"]
            self.metrics.requests.labels(route, method, str(status)).inc()
            self.metrics.latency.labels(route, method).observe(elapsed)
            duration_ms = round(elapsed * 1000, 2)
            log.info("request", method=method, route=route, status=status,
                     duration_ms=duration_ms)  # fmt: skip
            if self.access is not None and not scope["path"].startswith(_OPERATIONAL):
                client = scope.get("client")
                user_id, issued = state.get("user_id"), state.get("token_issued_at")
                self.access.record(
                    Entry(
                        at=datetime.now(UTC),
                        source=str(client[0]) if client else "",
                        method=method,
                        route=route,
                        status=status,
                        user_id=user_id if isinstance(user_id, int) else None,
                        token_issued_at=(
                            datetime.fromtimestamp(issued, UTC)
                            if isinstance(issued, float)
                            else None
                        ),
                        duration_ms=duration_ms,
                        request_id=req_id,
                    )
                )

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", req_id.encode())]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                record()
            await send(message)

        try:
            with public_lane(not scope["path"].startswith(_MAY_USE_RESERVE)):
                await self.app(scope, receive, send_with_id)
        except Exception:
            # Answered here rather than by Starlette's outermost handler, which re-raises
            # to the server and so drops the connection after the 500.
            log.exception("unhandled error")
            if status:
                raise
            await _send_json(send_with_id, 500, INTERNAL_ERROR)
        finally:
            record()  # no answer at all (the client went away): counted with status 0
            structlog.contextvars.clear_contextvars()


def _retry_after(scope: Scope) -> list[tuple[bytes, bytes]]:
    """Retry-After only where a retry is safe: reads, and writes carrying an
    Idempotency-Key. A keyless write answered at the deadline may still commit (its work
    goes on), and a blind retry would then meet its own booking as a 409."""
    if scope["method"] in ("GET", "HEAD") or any(
        name == b"idempotency-key" for name, _ in scope.get("headers", ())
    ):
        return [(b"retry-after", b"1")]
    return []


class Detached:
    """Requests answered at their deadline whose work still runs: the lifespan lets them
    finish (bounded) before it closes the connections they use, then cancels the rest."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Future[None]] = set()

    def add(self, task: asyncio.Future[None]) -> None:
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def drain(self, grace_s: float) -> None:
        if not self.tasks:
            return
        _done, pending = await asyncio.wait(set(self.tasks), timeout=grace_s)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=grace_s)


class LoadShedding:
    """At most ``limit`` requests in flight per worker; the next one gets a fast 503. And
    every request is answered within ``deadline_s``: past it the client gets 503
    ``deadline_exceeded`` with Retry-After, while the work goes on in the background to
    its own end (0 disables the deadline).

    A worker that queues without bound turns a slow dependency into a latency disaster
    for everyone; refusing early keeps the accepted requests fast and tells clients (and
    load balancers) to back off. The deadline is the same idea in time: a database that
    answers in seconds (the drill's slow-database scenario) gets a predictable answer at
    the launch gate's latency limit instead of clients waiting behind it.

    The work is not cancelled, on purpose: a payment cut between its provider call and
    its bookkeeping would leave its idempotency key and lease held until they expire
    (the drill found exactly that under load). Finishing it instead means a retry with the
    same key gets ``idempotency_in_progress`` for a moment, then the stored answer. The
    work still counts as in flight until it ends, so shedding bounds it, and it is bounded
    by the service's own timeouts (statement, pool, provider). Health and metrics are
    neither shed nor deadlined.
    """

    def __init__(
        self, app: ASGIApp, metrics: Metrics, limit: int, deadline_s: float = 0,
        detached: Detached | None = None,
    ) -> None:  # fmt: skip
        self.app = app
        self.metrics = metrics
        self.limit = limit
        self.deadline_s = deadline_s
        self.detached = detached or Detached()
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(_OPERATIONAL):
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            self.metrics.shed.inc()
            await _send_json(send, 503, OVERLOADED, [(b"retry-after", b"1")])
            return
        self.in_flight += 1
        self.metrics.in_flight.set(self.in_flight)
        if not self.deadline_s:
            try:
                await self.app(scope, receive, send)
            finally:
                self._done()
            return
        await self._with_deadline(scope, receive, send)

    async def _with_deadline(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = answered = False

        async def guarded(message: Message) -> None:
            nonlocal started
            if answered:  # the client has its 503; this late answer goes nowhere
                return
            started = True
            await send(message)

        work = asyncio.ensure_future(self.app(scope, receive, guarded))
        detached = False
        try:
            try:
                await asyncio.wait_for(asyncio.shield(work), self.deadline_s)
            except TimeoutError:
                if work.done():  # it ended just at the deadline: its own answer (or error) stands
                    work.result()
                    return
                if started:  # the answer is on its way: let it finish
                    await work
                else:
                    answered = detached = True
                    work.add_done_callback(self._finished_late)
                    self.detached.add(work)
                    self.metrics.deadline.inc()
                    log.warning("deadline exceeded", deadline_s=self.deadline_s)
                    await _send_json(send, 503, DEADLINE, _retry_after(scope))
        except asyncio.CancelledError:
            work.cancel()  # our caller is going away (shutdown): the work goes with it
            raise
        finally:
            if not detached:
                self._done()

    def _finished_late(self, work: asyncio.Future[None]) -> None:
        self._done()
        if not work.cancelled() and work.exception() is not None:
            log.error("request failed after its deadline", error=type(work.exception()).__name__)

    def _done(self) -> None:
        self.in_flight -= 1
        self.metrics.in_flight.set(self.in_flight)
