"""Events: the record of every state change, and the feed the webhook worker delivers.

An event's ``data.object`` is a snapshot taken when the change happened, as at Stripe: a
receiver that gets ``payment_intent.succeeded`` late or twice still sees the object as it
was then, which is exactly what makes out-of-order handling a real test. Snapshots are kept
serialized (a few hundred bytes instead of a tree of dicts), so a long drill's event log
stays small, and are spliced into answers and webhook bodies without re-encoding.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass

import orjson

from stripe_emulator.clock import Clock
from stripe_emulator.ids import IdFactory
from stripe_emulator.objects import JSON, Event, WebhookEndpoint
from stripe_emulator.render import compact_json
from stripe_emulator.store import Collection


@dataclass(frozen=True, slots=True)
class RequestInfo:
    id: str | None = None
    idempotency_key: str | None = None


_NO_REQUEST = RequestInfo()
current_request: ContextVar[RequestInfo] = ContextVar("current_request", default=_NO_REQUEST)


class EventLog:
    def __init__(
        self,
        clock: Clock,
        ids: IdFactory,
        endpoints: Collection[WebhookEndpoint],
        on_event: Callable[[Event, list[WebhookEndpoint]], None],
    ) -> None:
        self.events: Collection[Event] = Collection("event")
        self._clock = clock
        self._ids = ids
        self._endpoints = endpoints
        self._on_event = on_event

    def emit(self, event_type: str, obj: JSON, previous: JSON | None = None) -> Event:
        request = current_request.get()
        data: JSON = {"object": obj}
        if previous:
            data["previous_attributes"] = previous
        targets = [we for we in self._endpoints if we.wants(event_type)]
        event = Event(
            id=self._ids.new("evt"),
            created=self._clock.timestamp(),
            type=event_type,
            data=compact_json(data),
            request_id=request.id,
            idempotency_key=request.idempotency_key,
            pending={we.id for we in targets},
        )
        self.events.add(event)
        if targets:
            self._on_event(event, targets)
        return event


def render(event: Event) -> JSON:
    return {
        "id": event.id,
        "object": "event",
        "api_version": "2025-09-30.clover",
        "created": event.created,
        "data": orjson.Fragment(event.data),
        "livemode": False,
        "pending_webhooks": len(event.pending),
        "request": {"id": event.request_id, "idempotency_key": event.idempotency_key},
        "type": event.type,
    }


def matches_type(event: Event, patterns: list[str]) -> bool:
    for pattern in patterns:
        if pattern == event.type or (
            pattern.endswith(".*") and event.type.startswith(pattern[:-1])
        ):
            return True
    return False
