"""Alerting for the drill: the playbook's rules (Part 4.3) as a Prometheus rules file, the
receiver Alertmanager pages, which records when each alert fired and resolved, and read-only
clients for a team's own Prometheus and Alertmanager (metric snapshots, rule health)."""

from gameday.alerts.events import AlertEvent, PayloadError, Status, aligned_now, parse_payload
from gameday.alerts.prom import (
    AlertmanagerClient,
    PromError,
    PrometheusClient,
    Sample,
    Series,
    Snapshot,
    snapshot,
    snapshot_queries,
)
from gameday.alerts.receiver import AlertReceiver, read_events
from gameday.alerts.rules import (
    AlertRule,
    MetricNames,
    Pace,
    RulesError,
    Severity,
    check_rules,
    drill_rules,
    render_rules,
    scaled_for,
)

__all__ = [
    "AlertEvent",
    "AlertReceiver",
    "AlertRule",
    "AlertmanagerClient",
    "MetricNames",
    "Pace",
    "PayloadError",
    "PromError",
    "PrometheusClient",
    "RulesError",
    "Sample",
    "Series",
    "Severity",
    "Snapshot",
    "Status",
    "aligned_now",
    "check_rules",
    "drill_rules",
    "parse_payload",
    "read_events",
    "render_rules",
    "scaled_for",
    "snapshot",
    "snapshot_queries",
]
