"""A circuit breaker for asyncio callers.

Hand-written because the maintained breakers do not fit: pybreaker's async path needs
Tornado, aiobreaker has not been released since 2021, and purgatory keeps its state in its
own storage abstraction. This one is a counter and a clock: after ``failures`` consecutive
failures it opens for ``reset_s``; then one trial request is let through (half-open), whose
outcome closes or re-opens it. While open, callers fail at once instead of waiting for
connect timeouts, which is what keeps a worker responsive while a dependency is down.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable


class BreakerState(enum.IntEnum):
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        *,
        failures: int,
        reset_s: float,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[str, BreakerState], None] | None = None,
    ) -> None:
        self.name = name
        self._threshold = failures
        self._reset_s = reset_s
        self._clock = clock
        self._on_change = on_change
        self._failures = 0
        self._state = BreakerState.CLOSED
        self._opened_at = 0.0
        self._trial_started: float | None = None

    @property
    def state(self) -> BreakerState:
        return self._state

    def allow(self) -> bool:
        """May a call go out now? In half-open state only one trial at a time may."""
        now = self._clock()
        if self._state is BreakerState.OPEN:
            if now - self._opened_at < self._reset_s:
                return False
            self._set(BreakerState.HALF_OPEN)
        if self._state is BreakerState.HALF_OPEN:
            # A trial that never reported back (a hung call) stops blocking after reset_s.
            if self._trial_started is not None and now - self._trial_started < self._reset_s:
                return False
            self._trial_started = now
        return True

    def record_success(self) -> None:
        self._failures = 0
        self._trial_started = None
        if self._state is not BreakerState.CLOSED:
            self._set(BreakerState.CLOSED)

    def record_failure(self) -> None:
        self._failures += 1
        self._trial_started = None
        if self._state is BreakerState.HALF_OPEN or self._failures >= self._threshold:
            self._opened_at = self._clock()
            if self._state is not BreakerState.OPEN:
                self._set(BreakerState.OPEN)

    def _set(self, state: BreakerState) -> None:
        self._state = state
        if self._on_change is not None:
            self._on_change(self.name, state)
