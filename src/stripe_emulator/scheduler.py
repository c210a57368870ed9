"""Timers on the emulator's clock, run by one asyncio task.

Webhook retries, delayed or reordered deliveries and the end of ``processing`` are all
"do this at emulator time T". One heap and one task serve them all; advancing the clock
wakes the task so that a drill compressing three days of retries does not wait for them.
The heap is bounded: past ``max_pending`` timers, new ones are refused (and counted).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections.abc import Callable

import structlog

from stripe_emulator.clock import Clock

log = structlog.get_logger(__name__)

_MAX_SLEEP_S = 0.5


class Scheduler:
    def __init__(self, clock: Clock, max_pending: int = 200_000) -> None:
        self._clock = clock
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._max_pending = max_pending
        self._wakeup: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.refused = 0
        clock.on_jump(self.wake)

    def __len__(self) -> int:
        return len(self._heap)

    def call_at(self, due: float, callback: Callable[[], None]) -> bool:
        if len(self._heap) >= self._max_pending:
            self.refused += 1
            log.warning("scheduler_full", pending=len(self._heap))
            return False
        heapq.heappush(self._heap, (due, next(self._seq), callback))
        if self._heap[0][0] == due:
            self.wake()
        return True

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> bool:
        return self.call_at(self._clock.now() + delay_s, callback)

    def clear(self) -> None:
        self._heap.clear()

    def wake(self) -> None:
        if self._wakeup is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._wakeup.set)

    async def run(self) -> None:
        """Run due callbacks until cancelled."""
        self._loop = asyncio.get_running_loop()
        self._wakeup = asyncio.Event()
        while True:
            self._run_due()
            timeout = _MAX_SLEEP_S
            if self._heap:
                timeout = min(
                    timeout, self._clock.real_seconds(self._heap[0][0] - self._clock.now())
                )
            self._wakeup.clear()
            if timeout <= 0:
                await asyncio.sleep(0)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout)

    def _run_due(self) -> None:
        now = self._clock.now()
        while self._heap and self._heap[0][0] <= now:
            _, _, callback = heapq.heappop(self._heap)
            try:
                callback()
            except Exception:
                log.exception("timer_failed")
