"""The emulator's compressible clock.

Stripe retries webhooks for three days and prunes idempotency keys after a day; a drill
cannot wait that long. Emulator time runs ``speed`` times faster than wall time and can be
advanced at once, and everything time-based in the emulator (``created`` stamps, key expiry,
the webhook retry schedule) reads this clock. Listeners are told when time jumps so that
sleepers wake up instead of waiting out the old deadline.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Clock:
    def __init__(self, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError("clock speed must be positive")
        self.speed = speed
        self._wall_start = time.time()
        self._mono_start = time.monotonic()
        self._offset = 0.0
        self._listeners: list[Callable[[], None]] = []

    def now(self) -> float:
        """Emulator time as a Unix timestamp in seconds."""
        elapsed = (time.monotonic() - self._mono_start) * self.speed
        return self._wall_start + elapsed + self._offset

    def timestamp(self) -> int:
        return int(self.now())

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self._offset += seconds
        for listener in self._listeners:
            listener()
        return self.now()

    def real_seconds(self, emulator_seconds: float) -> float:
        """How long to sleep in wall time for ``emulator_seconds`` to pass."""
        return max(emulator_seconds, 0.0) / self.speed

    def on_jump(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)
