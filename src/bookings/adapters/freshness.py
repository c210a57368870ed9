"""When a worker's short-lived copy of database state (feature flags, token revocations) is
due for a reload: one reload at a time.

When the copy expires under a burst, one request reloads it and the others go on with the
copy they have (unless there is none yet), instead of each taking a pooled connection for
the same read: the pool is what a payment storm runs short of. A failed reload leaves the
copy stale, so the next request tries again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class Freshness:
    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl_s = ttl_s
        self._clock = clock
        self._loaded_at: float | None = None
        self._reloading = asyncio.Lock()

    def loaded(self) -> None:
        """The copy was just read from the database."""
        self._loaded_at = self._clock()

    def stale(self) -> bool:
        return self._loaded_at is None or self._clock() - self._loaded_at >= self._ttl_s

    async def ensure(self, reload: Callable[[], Awaitable[object]]) -> None:
        """``reload`` (which calls :meth:`loaded` on success) if the copy is stale and no
        other reload is running; waits for a running one only when there is no copy yet."""
        if self.stale() and (not self._reloading.locked() or self._loaded_at is None):
            async with self._reloading:
                if self.stale():
                    await reload()
