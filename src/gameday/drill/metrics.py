"""The monitoring side of a drill: metric snapshots from Prometheus and the alerts that
paged, from the embedded stack's pipeline or from a team's own Prometheus/Alertmanager.

Monitoring is evidence, not the verdict's source: when it cannot be read, a snapshot says
so (``errors``) and the drill goes on; only an *expected* alert that never arrives fails
a scenario. Nothing here raises: an unreachable Prometheus must not end a drill that has
faults to heal.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from gameday.alerts.prom import AlertmanagerClient, PromError, PrometheusClient, snapshot_queries
from gameday.alerts.prom import snapshot as take_snapshot
from gameday.alerts.rules import RATE_WINDOW
from gameday.drill.closing import Span, pool_utilisation
from gameday.drill.target import Target

if TYPE_CHECKING:
    from gameday.stack.stack import Stack


def prometheus_url(target: Target, stack: Stack | None) -> str:
    if target.prometheus_url:
        return target.prometheus_url
    if stack is not None and stack.monitoring is not None and stack.monitoring.prometheus:
        return stack.monitoring.prometheus.address
    return ""


def snapshot(target: Target, stack: Stack | None) -> dict[str, Any]:
    url = prometheus_url(target, stack)
    if not url:
        return {"values": {}, "errors": {"prometheus": "no Prometheus to read"}}
    pace = stack.options.pace if stack is not None else "real"
    queries = snapshot_queries(target.metric_names, RATE_WINDOW[pace])
    try:
        with PrometheusClient(url) as client:
            found: dict[str, Any] = take_snapshot(client, queries).to_json()
    except (PromError, ValueError) as error:
        return {"values": {}, "errors": {"prometheus": str(error)}}
    return found


def alert_events(target: Target, stack: Stack | None, since: datetime) -> list[dict[str, Any]]:
    """Alert notifications since ``since``: what the harness's receiver got (embedded), or
    the alerts a team's Alertmanager has active that started firing since then (external;
    their ``startsAt`` stands in for the notification time)."""
    if stack is not None and stack.monitoring is not None and not target.alertmanager_url:
        return [e.to_json() for e in stack.monitoring.receiver.events() if e.received_at >= since]
    if not target.alertmanager_url:
        return []
    try:
        with AlertmanagerClient(target.alertmanager_url) as client:
            alerts = client.alerts()
    except (PromError, ValueError):
        return []
    found = []
    for alert in alerts:
        try:
            started = datetime.fromisoformat(str(alert.get("startsAt")))
        except ValueError:
            continue
        if started >= since:
            found.append({"name": alert.get("name", ""), "status": "firing",
                          "labels": alert.get("labels", {}), "starts_at": started.isoformat(),
                          "ends_at": None, "received_at": started.isoformat()})  # fmt: skip
    return found


def pool_figures(
    target: Target, stack: Stack | None, wall: Callable[[float], datetime], end_t: float,
    spans: list[Span],
) -> dict[str, Any]:  # fmt: skip
    """DB pool utilisation over the whole drill (``wall`` maps history seconds to time)."""
    url = prometheus_url(target, stack)
    if not url:
        return {"steady": None, "peak": None, "error": "no Prometheus to read"}
    pace = stack.options.pace if stack is not None else "real"
    expr = snapshot_queries(target.metric_names, RATE_WINDOW[pace])["db_pool_utilisation"]
    step = max(1.0, round(end_t / 300))
    try:
        with PrometheusClient(url) as client:
            found = client.query_range(expr, wall(0), wall(end_t), step)
    except (PromError, ValueError) as error:
        return {"steady": None, "peak": None, "error": str(error)}
    samples = [point for series in found for point in series.points]
    unix = [(wall(a).timestamp(), wall(b).timestamp()) for a, b in spans]
    return {**pool_utilisation(samples, unix), "step_s": step}
