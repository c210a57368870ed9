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
    ignore_idempotency_keys: bool = False
    """Behave like a provider without idempotency (localstripe does): the unsafe control
    that proves a drill's duplicate-charge check can fail."""
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
    """Check one JSON value against the type of the switch's default."""
    ok: bool
    if name == "should_retry":
        ok = value is None or isinstance(value, bool)
    elif name == "seed":
        ok = value is None or (isinstance(value, int) and not isinstance(value, bool))
    elif name == "decline_amounts":
        ok = isinstance(value, list) and all(isinstance(v, int) for v in value)
        value = tuple(value) if ok else value
    elif name == "decline_metadata":
        ok = isinstance(value, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        )
    elif isinstance(default, bool) or isinstance(value, bool):
        ok = isinstance(default, bool) and isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, int | float)
        value = float(value) if ok else value
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise ValidationError(f"Invalid value for fault switch {name}: {value!r}", param=name)
    return value


class Faults:
    """The active configuration plus the random draws made against it."""

    def __init__(self) -> None:
        self.config = FaultConfig()
        self.webhook_down_until = 0.0
        self._rng = random.Random()
        self.injected_errors = 0
        self.dropped_connections = 0

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
        injected = self._chance(self.config.error_rate)
        self.injected_errors += injected
        return injected

    def drop_connection(self) -> bool:
        dropped = self._chance(self.config.drop_rate)
        self.dropped_connections += dropped
        return dropped

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
