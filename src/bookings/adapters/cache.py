"""The availability cache in Redis, with the database as the fallback path.

One hash per resource (``<prefix>:avail:<id>``), one field per queried window, one TTL: a
hold, cancel or expiry deletes the resource's hash, so invalidation is one command. A read
that raced an invalidation can put back a stale answer for at most the TTL; that is
acceptable because availability is advisory — the hold itself is decided by the database.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable

from bookings.adapters.flags import REDIS_OPTIONAL_FALLBACK, FlagStore
from bookings.adapters.redis import RedisDownError, RedisGuard
from bookings.errors import CacheUnavailable
from bookings.observability.metrics import Metrics


class AvailabilityCache:
    def __init__(
        self, redis: RedisGuard, flags: FlagStore, metrics: Metrics, *, ttl_s: int, prefix: str
    ) -> None:
        self._redis = redis
        self._flags = flags
        self._metrics = metrics
        self._ttl_s = ttl_s
        self._prefix = prefix

    def _key(self, resource_id: int) -> str:
        return f"{self._prefix}:avail:{resource_id}"

    async def get_or_load(
        self, resource_id: int, window: str, load: Callable[[], Awaitable[str]]
    ) -> str:
        key = self._key(resource_id)
        try:
            cached = await self._redis.call(lambda r: r.hget(key, window))
        except RedisDownError:
            if not await self._flags.enabled(REDIS_OPTIONAL_FALLBACK):
                raise CacheUnavailable() from None
            self._metrics.cache.labels("bypass").inc()
            return await load()
        if cached is not None:
            self._metrics.cache.labels("hit").inc()
            return str(cached)
        self._metrics.cache.labels("miss").inc()
        value = await load()

        async def store(r: object) -> object:
            async with self._redis.client.pipeline(transaction=False) as pipe:
                pipe.hset(key, window, value)
                pipe.expire(key, self._ttl_s)
                return await pipe.execute()

        with contextlib.suppress(RedisDownError):  # only the next reader pays for the miss
            await self._redis.call(store)
        return value

    async def invalidate(self, resource_id: int) -> None:
        # If Redis is down, entries expire within the TTL; a Redis that comes back empty
        # has none.
        key = self._key(resource_id)
        with contextlib.suppress(RedisDownError):
            await self._redis.call(lambda r: r.delete(key))
