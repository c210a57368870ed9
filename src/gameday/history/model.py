"""One operation of the history, Jepsen-style: an invocation and its outcome.

Each line of a history carries both the invoke time (``t0``) and the completion time
(``t1``) of one operation, so a checker needs no pairing pass and a streaming reader holds
one line at a time. The outcome ``type`` is the part checkers must respect:

- ``ok``: the target acknowledged it (2xx); it happened.
- ``fail``: the target refused it (4xx); it definitely did not happen.
- ``info``: nobody knows (5xx, timeout, connection lost, or the drill stopped while it was in
  flight). An ``info`` may or may not have taken effect, so it is never counted as success
  and never as proof of absence.

``msgspec`` structs keep a million-line history cheap to decode (typed, no dict per line).
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

OpType = Literal["ok", "fail", "info"]


class Op(msgspec.Struct, frozen=True, omit_defaults=True, forbid_unknown_fields=False):
    index: int
    """Order of completion within the history (0, 1, 2…)."""
    type: OpType
    f: str
    """The logical operation: ``login``, ``refresh``, ``hold``, ``pay``, ``get_booking``,
    ``availability``, ``webhook``, ``health``…"""
    process: str
    """The client that issued it (one client issues one operation at a time)."""
    endpoint: str
    """Method and route template, e.g. ``POST /bookings/{id}/payment``."""
    t0: float
    """Invocation, seconds since the history started (monotonic clock)."""
    t1: float
    """Completion (or when the outcome was given up on)."""
    status: int = 0
    """HTTP status; 0 when there was no answer."""
    target: str = ""
    """Where it was sent: ``ingress`` or one instance (``w1``)."""
    scenario: str = ""
    phase: str = ""
    correlation_id: str = ""
    idempotency_key: str = ""
    error: str = ""
    """The answer's error code, or the exception's class name when there was no answer."""
    value: dict[str, Any] | None = None
    """What the checkers need from the answer (booking id, payment intent, status…)."""

    @property
    def latency_s(self) -> float:
        return self.t1 - self.t0


def outcome_of(status: int) -> OpType:
    """The outcome an HTTP status proves: 2xx ok, 4xx fail, anything else unknown."""
    if 200 <= status < 300:
        return "ok"
    if 400 <= status < 500:
        return "fail"
    return "info"
