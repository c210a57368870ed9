"""Alert events as the harness records them, parsed once from Alertmanager's webhook body.

Alertmanager's version-4 payload is checked at this edge and turned into typed
``AlertEvent`` values; anything else in the harness reads only those. A body that does not
match is refused as a whole (``PayloadError``), because a half-recorded notification would
make a time-to-detect silently wrong.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast

import orjson

Status = Literal["firing", "resolved"]
_STATUSES = ("firing", "resolved")
_WALL_0 = datetime.now(UTC)
_MONO_0 = time.monotonic()


def aligned_now() -> datetime:
    """Wall-clock time (UTC) that advances with ``time.monotonic``: comparable with any
    other time from this function in this process, never stepped by NTP."""
    return _WALL_0 + timedelta(seconds=time.monotonic() - _MONO_0)


class PayloadError(ValueError):
    """The webhook body is not an Alertmanager version-4 notification."""


@dataclass(frozen=True, slots=True)
class AlertEvent:
    name: str
    status: Status
    labels: dict[str, str]
    starts_at: datetime
    ends_at: datetime | None
    """None while firing (Alertmanager sends the zero time)."""
    received_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "labels": self.labels,
            "starts_at": self.starts_at.isoformat(),
            "ends_at": self.ends_at.isoformat() if self.ends_at else None,
            "received_at": self.received_at.isoformat(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AlertEvent:
        status = data["status"]
        if status not in _STATUSES:
            raise ValueError(f"unknown alert status {status!r}")
        ends = data.get("ends_at")
        return cls(
            name=str(data["name"]),
            status=cast("Status", status),
            labels={str(k): str(v) for k, v in dict(data["labels"]).items()},
            starts_at=datetime.fromisoformat(data["starts_at"]),
            ends_at=datetime.fromisoformat(ends) if ends else None,
            received_at=datetime.fromisoformat(data["received_at"]),
        )


def parse_payload(body: bytes, received_at: datetime) -> list[AlertEvent]:
    """Every alert of one notification, or ``PayloadError`` saying what is wrong."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise PayloadError(f"not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise PayloadError("the body must be a JSON object")
    if payload.get("version") != "4":
        raise PayloadError(f"expected webhook version '4', got {payload.get('version')!r}")
    alerts = payload.get("alerts")
    if not isinstance(alerts, list):
        raise PayloadError("'alerts' must be a list")
    return [_alert(a, i, received_at) for i, a in enumerate(alerts)]


def _alert(raw: object, index: int, received_at: datetime) -> AlertEvent:
    where = f"alerts[{index}]"
    if not isinstance(raw, dict):
        raise PayloadError(f"{where} must be an object")
    labels = raw.get("labels")
    if not isinstance(labels, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
    ):
        raise PayloadError(f"{where}.labels must map strings to strings")
    name, status = labels.get("alertname"), raw.get("status")
    if not name:
        raise PayloadError(f"{where}.labels has no alertname")
    if status not in _STATUSES:
        raise PayloadError(f"{where}.status must be 'firing' or 'resolved', got {status!r}")
    ends_at = _time(raw.get("endsAt"), f"{where}.endsAt", optional=True)
    return AlertEvent(
        name=name,
        status=cast("Status", status),
        labels=dict(labels),
        starts_at=_time(raw.get("startsAt"), f"{where}.startsAt") or received_at,
        ends_at=ends_at if status == "resolved" else None,
        received_at=received_at,
    )


def _time(value: object, where: str, *, optional: bool = False) -> datetime | None:
    """RFC 3339 (nanoseconds are cut to microseconds); Go's zero time means "not set"."""
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise PayloadError(f"{where} must be an RFC 3339 time string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise PayloadError(f"{where} is not an RFC 3339 time: {value!r}") from None
    if parsed.tzinfo is None:
        raise PayloadError(f"{where} has no time zone: {value!r}")
    return None if parsed.year <= 1 else parsed
