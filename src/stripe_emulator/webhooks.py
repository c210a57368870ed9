"""Signed, at-least-once, unordered webhook delivery with Stripe's retry behaviour.

Each (event, endpoint) pair is a delivery. A fixed pool of workers POSTs due deliveries
with a ``Stripe-Signature`` header freshly computed per attempt; anything but a 2xx within
the timeout is a failure and is retried with exponential backoff on the emulator clock until
the retry window (Stripe: three days) runs out. The fault switches add duplicates, delays
that reorder events, and a window in which the endpoint is treated as down.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import random
import time
from collections import deque
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import httpx
import orjson
import structlog

from stripe_emulator import events
from stripe_emulator.objects import Event, WebhookEndpoint

if TYPE_CHECKING:
    from stripe_emulator.state import State

log = structlog.get_logger(__name__)

_MAX_BACKOFF_S = 12 * 3600.0


def sign(secret: str, payload: bytes, timestamp: int) -> str:
    signed = f"{timestamp}.".encode() + payload
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    timeout_s: float = 10.0
    retry_base_s: float = 60.0
    retry_window_s: float = 3 * 24 * 3600.0
    workers: int = 8
    queue_size: int = 100_000
    log_size: int = 10_000


@dataclass(frozen=True, slots=True)
class Attempt:
    event_id: str
    endpoint_id: str
    number: int


class Dispatcher:
    def __init__(self, settings: DeliverySettings) -> None:
        self.settings = settings
        self._state: State | None = None
        self.attempts: deque[dict[str, Any]] = deque(maxlen=settings.log_size)
        self._queue: asyncio.Queue[Attempt] | None = None
        self._client: httpx.AsyncClient | None = None
        self._rng = random.Random()
        self.dropped = 0
        self.delivered = 0
        self.failed = 0
        """Attempts answered 2xx / not, since start (a reset keeps them: they are counters)."""

    @property
    def state(self) -> State:
        if self._state is None:
            raise RuntimeError("the dispatcher is not bound to a state yet")
        return self._state

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            raise RuntimeError("the dispatcher is not running")
        return self._client

    def bind(self, state: State) -> None:
        self._state = state
        self.attempts.clear()

    def clear(self) -> None:
        """Forget queued attempts (after a reset their events no longer exist anyway)."""
        if self._queue is not None:
            while not self._queue.empty():
                self._queue.get_nowait()

    def enqueue_event(self, event: Event, endpoints: list[WebhookEndpoint]) -> None:
        for endpoint in endpoints:
            delay = self.state.faults.first_delivery_delay_s()
            attempt = Attempt(event.id, endpoint.id, 1)
            self.state.scheduler.call_later(delay, partial(self._due, attempt))

    def _due(self, attempt: Attempt) -> None:
        if self._queue is None:
            return
        try:
            self._queue.put_nowait(attempt)
        except asyncio.QueueFull:
            self.dropped += 1
            log.warning("webhook_queue_full", event_id=attempt.event_id)
            self._retry_or_give_up(attempt, "delivery queue full")

    async def run(self) -> None:
        self._queue = asyncio.Queue(self.settings.queue_size)
        limits = httpx.Limits(max_connections=self.settings.workers * 2)
        async with httpx.AsyncClient(timeout=self.settings.timeout_s, limits=limits) as client:
            self._client = client
            async with asyncio.TaskGroup() as group:
                for _ in range(self.settings.workers):
                    group.create_task(self._work())

    async def _work(self) -> None:
        queue = self._queue
        if queue is None:
            raise RuntimeError("the dispatcher is not running")
        while True:
            attempt = await queue.get()
            try:
                await self._deliver(attempt)
            except Exception:
                log.exception("webhook_delivery_crashed", event_id=attempt.event_id)

    async def _deliver(self, attempt: Attempt) -> None:
        state = self.state
        event = state.log.events.by_id.get(attempt.event_id)
        endpoint = state.endpoints.by_id.get(attempt.endpoint_id)
        if event is None:
            return
        if endpoint is None or endpoint.status != "enabled":
            event.pending.discard(attempt.endpoint_id)  # nobody is waiting for it any more
            return
        if state.faults.webhook_down(state.clock.now()):
            self._record(attempt, event, None, "endpoint down (fault switch)", False)
            self._retry_or_give_up(attempt, "endpoint down")
            return
        copies = 2 if state.faults.duplicate_webhook() else 1
        delivered = False
        for copy in range(copies):
            status, error = await self._post(endpoint, event)
            if self._state is not state:
                return  # the emulator was reset while this delivery was in flight
            ok = status is not None and 200 <= status < 300
            self._record(attempt, event, status, error, copy > 0)
            delivered = delivered or ok
        if delivered:
            event.pending.discard(endpoint.id)
        else:
            self._retry_or_give_up(attempt, "non-2xx or no answer")

    async def _post(self, endpoint: WebhookEndpoint, event: Event) -> tuple[int | None, str | None]:
        payload = orjson.dumps(events.render(event))
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            "Stripe-Signature": sign(endpoint.secret, payload, int(time.time())),
        }
        try:
            response = await self.client.post(endpoint.url, content=payload, headers=headers)
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"[:200]
        return response.status_code, None

    def _record(
        self, attempt: Attempt, event: Event, status: int | None, error: str | None, duplicate: bool
    ) -> None:
        if status is not None and 200 <= status < 300:
            self.delivered += 1
        else:
            self.failed += 1
        self.attempts.append(
            {
                "event": event.id,
                "type": event.type,
                "endpoint": attempt.endpoint_id,
                "attempt": attempt.number,
                "duplicate": duplicate,
                "status": status,
                "error": error,
                "at": self.state.clock.now(),
            }
        )

    def _retry_or_give_up(self, attempt: Attempt, reason: str) -> None:
        state = self.state
        event = state.log.events.by_id.get(attempt.event_id)
        if event is None:
            return
        base = self.settings.retry_base_s * 2 ** (attempt.number - 1)
        delay = min(base, _MAX_BACKOFF_S) * self._rng.uniform(0.9, 1.1)
        if state.clock.now() + delay > event.created + self.settings.retry_window_s:
            event.failed.add(attempt.endpoint_id)
            log.info("webhook_gave_up", event_id=event.id, attempts=attempt.number, reason=reason)
            return
        retry = Attempt(attempt.event_id, attempt.endpoint_id, attempt.number + 1)
        if not state.scheduler.call_later(delay, partial(self._due, retry)):
            event.failed.add(attempt.endpoint_id)
