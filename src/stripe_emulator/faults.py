"""Fault switches for the drills: what the payment provider does wrong, and how often.

One frozen ``FaultConfig`` is swapped in whole (through ``/_emulator/faults`` or the Python
API), so a request never sees half of an update. ``Faults`` draws every random decision from
one seeded generator, which makes a drill's "10 % of requests fail" reproducible.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from stripe_emulator.errors import ValidationError

_MAX_LATENCY_MS = 60_000
_MAX_WINDOW_S = 3 * 24 * 3600


@dataclass(frozen=True, slots=True)
class FaultConfig:
    latency_ms: int = 0
    """Added to every API request after its idempotency key is reserved."""
    latency_jitter_ms: int = 0
    error_rate: float = 0.0
    """Fraction of API requests answered with ``error_status`` instead of being executed."""
    error_status: int = 500
    should_retry: bool | None = None
    """``Stripe-Should-Retry`` on injected errors; true also means nothing was saved."""
    drop_rate: float = 0.0
    """Fraction of API POSTs processed, then the connection dropped before the answer."""
    webhook_duplicate_rate: float = 0.0
    webhook_delay_s: float = 0.0
    webhook_reorder_window_s: float = 0.0
    """Each first delivery waits a random 0..window seconds, so events arrive out of order."""
    webhook_down_for_s: float = 0.0
    """Every delivery attempt fails for this long (emulator time) from when it is set."""
    decline_amounts: tuple[int, ...] = ()
    decline_metadata: Mapping[str, str] = field(default_factory=dict)
    decline_code: str = "generic_decline"
    processing_delay_s: float = 0.0
    """Successful card confirmations pass through ``processing`` for this long."""
    seed: int | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FaultConfig:
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ValidationError(f"Unknown fault switch: {', '.join(unknown)}", param=unknown[0])
        values: dict[str, Any] = {}
        for key, value in data.items():
            values[key] = _coerce(key, value, getattr(cls(), key))
        config = cls(**values)
        config.validate()
        return config

    def validate(self) -> None:
        for name in ("error_rate", "drop_rate", "webhook_duplicate_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValidationError(f"{name} must be between 0 and 1", param=name)
        if self.error_status not in (429, 500, 502, 503):
            raise ValidationError("error_status must be 429, 500, 502 or 503", param="error_status")
        if (
            not 0 <= self.latency_ms <= _MAX_LATENCY_MS
            or not 0 <= self.latency_jitter_ms <= _MAX_LATENCY_MS
        ):
            raise ValidationError(
                f"latency must be within 0..{_MAX_LATENCY_MS} ms", param="latency_ms"
            )
        for name in (
            "webhook_delay_s",
            "webhook_reorder_window_s",
            "webhook_down_for_s",
            "processing_delay_s",
        ):
            if not 0.0 <= getattr(self, name) <= _MAX_WINDOW_S:
                raise ValidationError(f"{name} must be within 0..{_MAX_WINDOW_S} s", param=name)

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["decline_amounts"] = list(self.decline_amounts)
        data["decline_metadata"] = dict(self.decline_metadata)
        return data


def _coerce(name: str, value: Any, default: Any) -> Any:
    if name == "should_retry":
        if value is None or isinstance(value, bool):
            return value
    elif name == "seed":
        if value is None or (isinstance(value, int) and not isinstance(value, bool)):
            return value
    elif (
        name == "decline_amounts"
        and isinstance(value, list)
        and all(isinstance(v, int) for v in value)
    ):
        return tuple(value)
    elif name == "decline_metadata" and isinstance(value, dict):
        if all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            return dict(value)
    elif isinstance(default, bool) or isinstance(value, bool):
        pass
    elif isinstance(default, float) and isinstance(value, int | float):
        return float(value)
    elif isinstance(value, type(default)):
        return value
    raise ValidationError(f"Invalid value for fault switch {name}: {value!r}", param=name)


class Faults:
    """The active configuration plus the random draws made against it."""

    def __init__(self) -> None:
        self.config = FaultConfig()
        self.webhook_down_until = 0.0
        self._rng = random.Random()

    def set(self, config: FaultConfig, now: float) -> None:
        config.validate()
        self._rng = random.Random(config.seed)
        self.webhook_down_until = (
            now + config.webhook_down_for_s if config.webhook_down_for_s else 0.0
        )
        self.config = config

    def clear(self) -> None:
        self.set(FaultConfig(), 0.0)

    def _chance(self, rate: float) -> bool:
        return rate > 0.0 and self._rng.random() < rate

    def latency_s(self) -> float:
        c = self.config
        if not c.latency_ms and not c.latency_jitter_ms:
            return 0.0
        return (c.latency_ms + self._rng.uniform(0, c.latency_jitter_ms)) / 1000.0

    def inject_error(self) -> bool:
        return self._chance(self.config.error_rate)

    def drop_connection(self) -> bool:
        return self._chance(self.config.drop_rate)

    def duplicate_webhook(self) -> bool:
        return self._chance(self.config.webhook_duplicate_rate)

    def first_delivery_delay_s(self) -> float:
        c = self.config
        reorder = (
            self._rng.uniform(0, c.webhook_reorder_window_s) if c.webhook_reorder_window_s else 0.0
        )
        return c.webhook_delay_s + reorder

    def webhook_down(self, now: float) -> bool:
        return now < self.webhook_down_until

    def forced_decline(self, amount: int, metadata: Mapping[str, str]) -> str | None:
        c = self.config
        if amount in c.decline_amounts:
            return c.decline_code
        if any(metadata.get(k) == v for k, v in c.decline_metadata.items()):
            return c.decline_code
        return None
