"""Alerting for the drill: the playbook's rules (Part 4.3) as a Prometheus rules file, and
the receiver Alertmanager pages, which records when each alert fired and resolved."""

from gameday.alerts.events import AlertEvent, PayloadError, Status, aligned_now, parse_payload
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
    "MetricNames",
    "Pace",
    "PayloadError",
    "RulesError",
    "Severity",
    "Status",
    "aligned_now",
    "check_rules",
    "drill_rules",
    "parse_payload",
    "read_events",
    "render_rules",
    "scaled_for",
]
