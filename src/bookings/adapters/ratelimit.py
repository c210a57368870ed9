"""A per-user fixed-window rate limit in Redis, with an in-process fallback.

Hand-written (a counter and an expiry) rather than taken from ``limits``, because its
storages open their own Redis connections outside the breaker and timeouts that keep a
Redis outage from stalling requests. While Redis is down each worker counts on its own, so
the effective limit is per worker until Redis returns: generous, never unbounded.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from bookings.adapters.flags import REDIS_OPTIONAL_FALLBACK, FlagStore
from bookings.adapters.redis import RedisDownError, RedisGuard
from bookings.errors import CacheUnavailable, RateLimited

WINDOW_S = 60
_MAX_LOCAL_KEYS = 50_000


class RateLimiter:
    def __init__(
        self,
        redis: RedisGuard,
        flags: FlagStore,
        *,
        per_minute: int,
        prefix: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self._flags = flags
        self._per_minute = per_minute
        self._prefix = prefix
        self._clock = clock
        self._local: dict[str, int] = {}
        self._local_window = 0

    def _count_locally(self, key: str, window: int) -> int:
        if window != self._local_window or len(self._local) > _MAX_LOCAL_KEYS:
            self._local, self._local_window = {}, window
        self._local[key] = self._local.get(key, 0) + 1
        return self._local[key]

    async def hit(self, subject: str, factor: int = 1) -> None:
        """Count one request of ``subject``; raise ``RateLimited`` past the limit."""
        now = self._clock()
        window = int(now // WINDOW_S)
        key = f"{self._prefix}:rl:{subject}:{window}"

        async def incr(r: object) -> int:
            async with self._redis.client.pipeline(transaction=False) as pipe:
                pipe.incr(key)
                pipe.expire(key, WINDOW_S * 2)
                count, _ = await pipe.execute()
            return int(count)

        try:
            count = await self._redis.call(incr)
        except RedisDownError:
            if not await self._flags.enabled(REDIS_OPTIONAL_FALLBACK):
                raise CacheUnavailable() from None
            count = self._count_locally(key, window)
        if count > self._per_minute * factor:
            retry_after = max(1, int((window + 1) * WINDOW_S - now))
            raise RateLimited("too many requests; slow down", retry_after_s=retry_after)
