"""Redis behind short timeouts and a breaker, so that losing it costs nothing per request.

redis-py retries failed commands by default; that is switched off here, because a retry
loop per request is exactly the stall an outage must not cause. When the breaker is open
``call`` fails at once with ``RedisDownError``; the callers (cache, rate limiter) decide whether
to fall back, which the ``REDIS_OPTIONAL_FALLBACK`` flag controls.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from bookings.adapters.breaker import CircuitBreaker
from bookings.observability.metrics import Metrics
from bookings.settings import Settings

T = TypeVar("T")


class RedisDownError(Exception):
    """Redis did not answer (or the breaker says it will not)."""


class RedisGuard:
    def __init__(self, settings: Settings, breaker: CircuitBreaker, metrics: Metrics) -> None:
        self.client: aioredis.Redis = aioredis.Redis.from_url(
            settings.redis_url,
            socket_connect_timeout=settings.redis_timeout_s,
            socket_timeout=settings.redis_timeout_s,
            retry=Retry(NoBackoff(), 0),
            retry_on_timeout=False,
            max_connections=64,
            decode_responses=True,
        )
        self.breaker = breaker
        self._metrics = metrics

    async def call(self, command: Callable[[aioredis.Redis], Awaitable[T]]) -> T:
        if not self.breaker.allow():
            raise RedisDownError("circuit open")
        try:
            result = await command(self.client)
        except (RedisError, OSError, TimeoutError, RuntimeError) as error:
            if isinstance(error, RuntimeError) and not _transport_closed(error):
                raise
            self.breaker.record_failure()
            self._metrics.redis_up.set(0)
            raise RedisDownError(str(error)) from error
        self.breaker.record_success()
        self._metrics.redis_up.set(1)
        return result

    async def ping(self) -> None:
        await self.call(lambda client: client.ping())

    async def close(self) -> None:
        await self.client.aclose()


def _transport_closed(error: RuntimeError) -> bool:
    """uvloop reports a write on a connection the server already closed as a RuntimeError
    ("unable to perform operation on <TCPTransport closed=True …>"), not an OSError, and
    redis-py passes it through: that is Redis going away, not a bug (found by the drill's
    Redis-outage scenario as a 500 on the first request after the outage began)."""
    return "closed" in str(error) and "ransport" in str(error)
