"""What every use case may depend on, built once per process by ``bootstrap``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from bookings.adapters.db import Database
from bookings.adapters.flags import FlagStore
from bookings.observability.metrics import Metrics
from bookings.settings import Settings


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Context:
    settings: Settings
    db: Database
    flags: FlagStore
    metrics: Metrics
    now: Callable[[], datetime] = utcnow

    @property
    def unsafe(self) -> bool:
        return self.settings.unsafe_no_safeguards
