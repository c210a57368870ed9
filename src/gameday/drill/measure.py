"""Figures a scenario's criteria read, computed from its own slice of the history.

Request-level figures come from what the drill's clients saw, never from the target's
metrics, so the verdict does not depend on the target reporting honestly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from gameday.history import Op

Figures = dict[str, float]


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list (NaN when empty)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass
class Window:
    """Requests in flight at any moment of [start, end) — a request sent just before a
    fault and hanging through it was hit by it — optionally only some targets."""

    start: float
    end: float
    targets: frozenset[str] = frozenset()
    only_f: str = ""
    latencies: list[float] = field(default_factory=list)
    requests: int = 0
    ok: int = 0
    fail: int = 0
    info: int = 0
    status_5xx: int = 0
    status_500: int = 0
    status_503: int = 0
    no_answer: int = 0

    def add(self, op: Op) -> None:
        if not (op.t0 < self.end and op.t1 > self.start) or (
            self.targets and op.target not in self.targets
        ):
            return
        if self.only_f and op.f != self.only_f:
            return
        if op.error == "cancelled":  # stopped by the drill itself (load ended), not the target
            return
        self.requests += 1
        if op.type == "ok":
            self.ok += 1
        elif op.type == "fail":
            self.fail += 1
        else:
            self.info += 1
        if op.status >= 500:
            self.status_5xx += 1
            self.status_500 += op.status == 500
            self.status_503 += op.status == 503
        if not op.status:
            self.no_answer += 1
        if op.status:
            self.latencies.append(op.t1 - op.t0)

    def figures(self) -> Figures:
        lat = sorted(self.latencies)
        n = max(1, self.requests)
        return {
            "requests": self.requests,
            "ok": self.ok,
            "fail": self.fail,
            "info": self.info,
            "status_5xx": self.status_5xx,
            "status_500": self.status_500,
            "status_503": self.status_503,
            "no_answer": self.no_answer,
            "error_rate": (self.status_5xx + self.no_answer) / n if self.requests else math.nan,
            "success_rate": self.ok / n if self.requests else math.nan,
            "p50_s": percentile(lat, 0.50),
            "p95_s": percentile(lat, 0.95),
            "p99_s": percentile(lat, 0.99),
            "max_s": lat[-1] if lat else math.nan,
        }


def windows(ops: Iterable[Op], spans: dict[str, Window]) -> dict[str, Figures]:
    """One pass over ``ops`` filling every window; figures per window name."""
    for op in ops:
        for window in spans.values():
            window.add(op)
    return {name: w.figures() for name, w in spans.items()}
