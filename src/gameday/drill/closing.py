"""What the gate and the report read about the drill as a whole, computed once at its end.

- ``steady``: request figures of everything *outside* the fault windows (an injection until
  its recovery), so the gate's 5xx and p95 rows judge the service at rest and under load,
  not while it is being broken on purpose.
- ``series``: requests, errors and p95 per time bucket, for the report's charts.
- ``webhooks``: the provider's own events of the drill, delivered or still pending: the
  "webhook processing success" row comes from the sender's side, which a service that drops
  events cannot flatter.
- ``db_pool``: the pool utilisation over the drill from Prometheus, steady (median outside
  the fault windows) and peak.

All of it is evidence, not a verdict: a figure that cannot be read is ``None`` with a reason
and the gate says "unknown". Nothing here raises into the drill.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from gameday.drill.measure import Window, percentile
from gameday.history import Op

Span = tuple[float, float]
CRITICAL_OPS = ("hold", "pay")
"""The playbook's critical endpoints: creating a booking and paying for it."""
_MAX_POINTS = 400


def fault_spans(scenarios: Iterable[dict[str, Any]], unrecovered_s: float) -> list[Span]:
    """Each injection until the service answered again after its heal (or ``unrecovered_s``
    after the heal when it never did)."""
    spans = []
    for scenario in scenarios:
        for fault in scenario.get("faults", []):
            start, healed = fault.get("injected_t"), fault.get("healed_t")
            # No recovery probe: nothing to recover from, the window ends with the heal.
            unrecovered = 0.0 if fault.get("recovery_probe", "") is None else unrecovered_s
            if start is None or healed is None:
                continue
            recovery = fault.get("recovery_s")
            spans.append((start, healed + (recovery if recovery is not None else unrecovered)))
    return spans


def _outside(op: Op, spans: list[Span]) -> bool:
    return not any(op.t0 < end and op.t1 > start for start, end in spans)


class Summary:
    """One pass over the history: steady-state figures and the time series."""

    def __init__(self, spans: list[Span], duration_s: float) -> None:
        self.spans = spans
        self.bucket_s = max(1.0, math.ceil(max(duration_s, 1.0) / _MAX_POINTS))
        self.steady = {"all": Window(-math.inf, math.inf)} | {
            f: Window(-math.inf, math.inf, only_f=f) for f in CRITICAL_OPS
        }
        self._buckets: dict[int, list[Any]] = {}

    def add(self, op: Op) -> None:
        if op.error == "cancelled":
            return
        if _outside(op, self.spans):
            for window in self.steady.values():
                window.add(op)
        bucket = self._buckets.setdefault(int(op.t0 // self.bucket_s), [0, 0, []])
        bucket[0] += 1
        bucket[1] += op.status >= 500 or not op.status
        if op.status:
            bucket[2].append(op.t1 - op.t0)

    def result(self) -> dict[str, Any]:
        steady = {name: w.figures() for name, w in self.steady.items()}
        critical = {f: steady[f]["p95_s"] for f in CRITICAL_OPS if steady[f]["requests"]}
        points = []
        for index in sorted(self._buckets):
            requests, errors, latencies = self._buckets[index]
            p95 = percentile(sorted(latencies), 0.95)
            points.append([
                round(index * self.bucket_s, 3), round(requests / self.bucket_s, 3),
                round(errors / requests, 4) if requests else 0.0,
                None if math.isnan(p95) else round(p95 * 1000, 1),
            ])  # fmt: skip
        return {
            "steady": {
                **steady["all"],
                "critical_p95_s": critical,
                "excluded_windows": [[round(a, 3), round(b, 3)] for a, b in self.spans],
            },
            "series": {
                "bucket_s": self.bucket_s,
                "columns": ["t", "requests_per_s", "error_rate", "p95_ms"],
                "points": points,
            },
        }


def summarise(ops: Iterable[Op], spans: list[Span], duration_s: float) -> dict[str, Any]:
    summary = Summary(spans, duration_s)
    for op in ops:
        summary.add(op)
    return summary.result()


Get = Callable[[str, dict[str, Any]], Awaitable[Any]]


async def webhook_deliveries(get: Get, since_unix: float, wait_s: float) -> dict[str, Any]:
    """The provider's events created since ``since_unix``: how many every endpoint has
    acknowledged. Waits up to ``wait_s`` (the playbook's window, scaled by the pace) for
    deliveries still being retried, then counts what is left as failed."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            events = await _events_since(get, since_unix)
        except Exception as error:  # evidence, never the end of the drill
            return {"events": None, "error": f"{type(error).__name__}: {error}"}
        pending = [e.get("id") for e in events if int(e.get("pending_webhooks") or 0) > 0]
        if not pending or time.monotonic() >= deadline:
            break
        await asyncio.sleep(1.0)
    total = len(events)
    return {
        "events": total,
        "delivered": total - len(pending),
        "pending": len(pending),
        "pending_ids": pending[:20],
        "success_rate": (total - len(pending)) / total if total else None,
        "window_s": wait_s,
    }


async def _events_since(get: Get, since_unix: float) -> list[dict[str, Any]]:
    """Newest first, as the provider lists them: paging stops at the first older event."""
    found: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 100}
    for _page in range(200):  # bounded: 20 000 events
        page = await get("/v1/events", dict(params))
        data = page.get("data", [])
        found.extend(e for e in data if float(e.get("created", 0)) >= int(since_unix))
        if not page.get("has_more") or not data:
            break
        if float(data[-1].get("created", 0)) < int(since_unix):
            break
        params["starting_after"] = data[-1]["id"]
    return found


def pool_utilisation(
    series: list[tuple[float, float]], spans_unix: list[Span]
) -> dict[str, float | None]:
    """Steady: the median sample outside the fault windows; peak: the largest sample."""
    values = [v for _t, v in series if math.isfinite(v)]
    steady = [
        v for t, v in series
        if math.isfinite(v) and not any(a <= t <= b for a, b in spans_unix)
    ]  # fmt: skip
    return {
        "steady": statistics.median(steady) if steady else None,
        "peak": max(values) if values else None,
        "samples": len(values),
    }


def wall_clock(now_t: float, now_wall: datetime) -> Callable[[float], datetime]:
    """History seconds → wall-clock time, anchored at one moment known in both clocks."""
    return lambda t: now_wall - timedelta(seconds=now_t - t)
