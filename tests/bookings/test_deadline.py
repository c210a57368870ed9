"""The request deadline at the ASGI level: the answer leaves at the deadline, the work
goes on to its end, Retry-After only where a retry is safe, shutdown drains the rest."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from starlette.types import Message, Receive, Scope, Send

from bookings.api.middleware import Detached, LoadShedding
from bookings.observability.metrics import Metrics


def _scope(method: str, headers: list[tuple[bytes, bytes]] | None = None) -> Scope:
    return {"type": "http", "method": method, "path": "/bookings", "headers": headers or []}


async def _call(shed: LoadShedding, scope: Scope) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await shed(scope, receive, send)
    return sent


def _slow_app(finished: list[str], seconds: float) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await asyncio.sleep(seconds)
        finished.append(scope["method"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"late"})

    return app


@pytest.mark.parametrize(
    ("method", "headers", "retry"),
    [
        ("GET", [], True),
        ("POST", [(b"idempotency-key", b"k1")], True),
        ("POST", [], False),  # a keyless write may still commit: no blind retry invited
    ],
)
def test_the_answer_leaves_at_the_deadline_and_the_work_finishes(
    method: str, headers: list[tuple[bytes, bytes]], retry: bool
) -> None:
    async def scenario() -> None:
        finished: list[str] = []
        detached = Detached()
        shed = LoadShedding(_slow_app(finished, 0.3), Metrics(), limit=4, deadline_s=0.05,
                            detached=detached)  # fmt: skip
        sent = await _call(shed, _scope(method, headers))
        assert sent[0]["status"] == 503
        assert orjson.loads(sent[1]["body"])["error"] == "deadline_exceeded"
        assert ((b"retry-after", b"1") in sent[0]["headers"]) is retry
        assert shed.in_flight == 1  # still working, still counted
        await detached.drain(grace_s=2.0)
        assert finished == [method]  # the work ran to its end; its late answer went nowhere
        assert len(sent) == 2
        assert shed.in_flight == 0

    asyncio.run(scenario())


def test_a_fast_answer_is_untouched_and_the_apps_own_timeout_stays_its_own() -> None:
    async def timing_out(scope: Scope, receive: Receive, send: Send) -> None:
        raise TimeoutError("the application's own")

    async def scenario() -> None:
        fast = LoadShedding(_slow_app([], 0.0), Metrics(), limit=4, deadline_s=1.0)
        sent = await _call(fast, _scope("GET"))
        assert sent[0]["status"] == 200
        own = LoadShedding(timing_out, Metrics(), limit=4, deadline_s=1.0)
        with pytest.raises(TimeoutError, match="own"):
            await _call(own, _scope("GET"))
        assert own.in_flight == 0

    asyncio.run(scenario())


def test_shutdown_cancels_work_that_outlives_the_grace() -> None:
    async def scenario() -> None:
        finished: list[str] = []
        detached = Detached()
        shed = LoadShedding(_slow_app(finished, 30), Metrics(), limit=4, deadline_s=0.05,
                            detached=detached)  # fmt: skip
        await _call(shed, _scope("GET"))
        await detached.drain(grace_s=0.1)
        assert finished == []
        assert not detached.tasks
        assert shed.in_flight == 0

    asyncio.run(scenario())
