"""The Redis guard turns every way of losing Redis into ``RedisDownError``, on uvloop too.

Found by the drill (scenario 5): when Redis closed the connection, the next write on it
raised uvloop's ``RuntimeError`` (a closed transport), which escaped as a 500.
"""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
import uvloop

from bookings.adapters.breaker import CircuitBreaker
from bookings.adapters.redis import RedisDownError, RedisGuard
from bookings.observability.metrics import Metrics
from bookings.settings import Settings

_URL = "redis://127.0.0.1:6379/0"


def test_a_connection_the_server_closed_is_redis_down_not_a_crash() -> None:
    async def scenario() -> list[str]:
        guard = RedisGuard(
            Settings(redis_url=_URL), CircuitBreaker("redis", failures=100, reset_s=1), Metrics()
        )
        outcomes = []
        try:
            await guard.ping()
            name = f"guard-{id(guard)}"
            await guard.call(lambda c: c.client_setname(name))
            admin = aioredis.Redis.from_url(_URL)
            for _round in range(5):  # the server drops every connection of the guard's client
                await admin.client_kill_filter(_type="normal", skipme=True)
                await asyncio.sleep(0.05)
                for _attempt in range(3):
                    try:
                        await guard.call(lambda c: c.incr("gameday:guard-test"))
                        outcomes.append("ok")
                    except RedisDownError:
                        outcomes.append("down")
            await admin.aclose()
        finally:
            await guard.close()
        return outcomes

    outcomes = uvloop.run(scenario())
    # Every call either worked (a fresh connection) or was reported as Redis down;
    # a RuntimeError escaping would have failed the test above.
    assert set(outcomes) <= {"ok", "down"}
    assert "ok" in outcomes


def test_uvloops_closed_transport_error_counts_as_redis_down() -> None:
    """The exact error of the drill's trace: a write on a uvloop transport already closed."""

    async def scenario() -> str:
        guard = RedisGuard(
            Settings(redis_url=_URL), CircuitBreaker("redis", failures=100, reset_s=1), Metrics()
        )

        async def write_on_closed(_client: aioredis.Redis) -> None:
            _reader, writer = await asyncio.open_connection("127.0.0.1", 6379)
            writer.close()
            await writer.wait_closed()
            writer.writelines([b"PING\r\n"])  # uvloop: RuntimeError, the handler is closed

        try:
            await guard.call(write_on_closed)
        except RedisDownError as error:
            return str(error)
        finally:
            await guard.close()
        return "no error"

    assert "closed" in uvloop.run(scenario())


@pytest.mark.parametrize("message", ["something else entirely", "dictionary changed size"])
def test_other_runtime_errors_are_not_swallowed(message: str) -> None:
    async def scenario() -> None:
        guard = RedisGuard(
            Settings(redis_url=_URL), CircuitBreaker("redis", failures=100, reset_s=1), Metrics()
        )

        async def broken(_client: aioredis.Redis) -> None:
            raise RuntimeError(message)

        try:
            await guard.call(broken)
        finally:
            await guard.close()

    with pytest.raises(RuntimeError, match=message):
        asyncio.run(scenario())
