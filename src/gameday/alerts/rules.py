"""The playbook's alert thresholds (Part 4.3) as Prometheus alerting rules.

The rules are generated rather than hand-written so that one table serves both paces: at
the ``real`` pace the ``for`` windows are the playbook's, so the exported file is what a team
installs in their own Prometheus; at the ``fast`` pace every window is divided by
``FAST_SCALE`` (never below ``MIN_FAST_FOR_S``) so a drill can watch an alert fire in
seconds. The metric names live in ``MetricNames`` so a team's own service can map them.

Two 4.3 thresholds are not metrics anywhere: "duplicate charge > 0" is found by the
provider-ledger and SQL checks, and only reconciliation's duplicate refunds show up as a
metric (used here as the closest signal); "confirmed duplicate booking > 0" has no metric at
all (a double booking the service let through is by definition not something it saw), so it
has no rule and the SQL checker of duplicate confirmed bookings covers it.

"Webhook failure rate" is counted the way the provider counts it: answers other than 2xx on
the webhook route (a refused signature and a failed processing alike), from the service's
request counter.
"""

from __future__ import annotations

import math
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml

from gameday.stack.processes import require

Pace = Literal["fast", "real"]
Severity = Literal["critical", "high", "medium"]

GROUP = "gameday-drill"
FAST_SCALE = 30
"""Fast-pace ``for`` windows are the playbook's divided by this."""
MIN_FAST_FOR_S = 2
"""Below two 1 s evaluations an alert would fire on a single bad scrape."""
RATE_WINDOW: dict[Pace, str] = {"fast": "15s", "real": "1m"}
"""``rate()`` windows: 15 s holds ~15 samples at the drill's 1 s scrape; 1 m assumes the
team scrapes at least every 15 s."""


class RulesError(RuntimeError):
    """promtool refused a rules file; the message carries promtool's own words."""


@dataclass(frozen=True, slots=True)
class MetricNames:
    """Where the rules find each signal; defaults are the reference service's names."""

    requests: str = "bookings_http_requests_total"
    latency_bucket: str = "bookings_http_request_duration_seconds_bucket"
    unobserved_routes: str = "/metrics|/health/.*"
    """Route regex left out of error and latency ratios (scrapes and probes are not users)."""
    webhook_route: str = "/webhooks/stripe"
    db_pool_in_use: str = "bookings_db_pool_in_use"
    db_pool_size: str = "bookings_db_pool_size"
    refunds: str = "bookings_refunds_total"
    duplicate_refund_reason: str = "duplicate_charge"
    redis_up: str = "bookings_redis_up"
    cache_requests: str = "bookings_cache_requests_total"
    lock_timeouts: str = "bookings_db_lock_timeouts"
    """A gauge counting since process start, hence ``delta`` rather than ``increase``."""


@dataclass(frozen=True, slots=True)
class AlertRule:
    name: str
    expr: str
    for_s: int
    severity: Severity
    summary: str
    playbook_ref: str = ""


def scaled_for(real_s: int, pace: Pace) -> int:
    """The ``for`` window at ``pace`` for a playbook window of ``real_s`` seconds (0 stays
    0: "duplicate charge > 0" fires at once at either pace)."""
    if pace == "real" or real_s == 0:
        return real_s
    return max(MIN_FAST_FOR_S, math.ceil(real_s / FAST_SCALE))


@dataclass(frozen=True, slots=True)
class Selectors:
    """The label matchers of each signal, shared by the rules and the metric snapshots so
    both always read the same traffic (scrapes and probes are never users)."""

    users: str
    errors: str
    hook: str
    failed: str
    hits: str = 'result="hit"'

    @classmethod
    def of(cls, n: MetricNames) -> Selectors:
        users = f'route!~"{n.unobserved_routes}"'
        hook = f'route="{n.webhook_route}"'
        return cls(users, users + ',status=~"5.."', hook, hook + ',status!~"2.."')


def rate_sum(metric: str, selector: str, window: str, by: str | None = "job") -> str:
    """``sum by (by) (rate(metric{selector}[window]))``; ``by=None`` sums everything."""
    braces = f"{{{selector}}}" if selector else ""
    grouping = f" by ({by})" if by else ""
    return f"sum{grouping} (rate({metric}{braces}[{window}]))"


def _exprs(n: MetricNames, w: str) -> dict[str, str]:
    """PromQL per rule name, ratios per job so a team's several services stay apart."""
    s = Selectors.of(n)
    users, errors, hook, failed, hits = s.users, s.errors, s.hook, s.failed, s.hits

    def per_job(metric: str, selector: str, by: str = "job") -> str:
        return rate_sum(metric, selector, w, by)

    duplicates = f'{n.refunds}{{reason="{n.duplicate_refund_reason}"}}'
    return {
        "InstanceDown": "up == 0",
        "ApiErrorRateHigh": (
            f"{per_job(n.requests, errors)}\n  / {per_job(n.requests, users)}\n  > 0.05"
        ),
        # A labelled counter is born at 1, which increase() cannot see: "or new" catches it.
        "DuplicateChargeDetected": (
            f"increase({duplicates}[{w}]) > 0\n  or ({duplicates} unless {duplicates} offset {w})"
        ),
        "DbConnectionUtilizationHigh": f"{n.db_pool_in_use} / {n.db_pool_size} > 0.9",
        "ApiLatencyP95High": (
            f"histogram_quantile(0.95, {per_job(n.latency_bucket, users, 'job, le')})\n  > 2.5"
        ),
        "WebhookFailureRateHigh": (
            f"{per_job(n.requests, failed)}\n  / {per_job(n.requests, hook)}\n  > 0.02"
        ),
        "RedisUnavailable": (
            f"{n.redis_up} == 0\n  and on (job, instance) "
            f"{per_job(n.requests, users, 'job, instance')} > 0"
        ),
        "CacheHitRateLow": (
            f"{per_job(n.cache_requests, hits)}\n  / {per_job(n.cache_requests, '')}\n  < 0.5"
        ),
        "LockWaitTimeoutsIncreasing": f"delta({n.lock_timeouts}[{w}]) > 0",
    }


# name, playbook window (s), severity, summary — in the playbook's order. InstanceDown is
# not in 4.3; one minute is the usual choice and keeps 2 s, the floor, at the fast pace.
_TABLE: tuple[tuple[str, int, Severity, str], ...] = (
    ("InstanceDown", 60, "critical",
     "{{ $labels.job }} target {{ $labels.instance }} is not answering scrapes."),
    ("ApiErrorRateHigh", 300, "critical", "API 5xx rate above 5% (playbook: > 5% for 5 min)."),
    ("DuplicateChargeDetected", 0, "critical",
     "Reconciliation refunded a duplicate charge (playbook: duplicate charge > 0); "
     "the provider-ledger and SQL checks are the primary detectors."),
    ("DbConnectionUtilizationHigh", 180, "critical",
     "DB pool above 90% in use (playbook: > 90% for 3 min)."),
    ("ApiLatencyP95High", 600, "high", "p95 latency above 2.5 s (playbook: > 2.5 s for 10 min)."),
    ("WebhookFailureRateHigh", 600, "high",
     "Over 2% of provider webhooks not answered 2xx (playbook: > 2% for 10 min)."),
    ("RedisUnavailable", 120, "high",
     "Redis unreachable while requests flow (playbook: > 2 min during active flow)."),
    ("CacheHitRateLow", 900, "medium",
     "Availability cache hit rate below 50% (playbook: < 50% for 15 min)."),
    ("LockWaitTimeoutsIncreasing", 600, "medium",
     "Lock wait timeouts keep increasing (playbook: continuously for 10 min)."),
)  # fmt: skip


def drill_rules(pace: Pace, names: MetricNames = MetricNames()) -> list[AlertRule]:
    """Every rule the drill evaluates: ``InstanceDown`` for every job, then Part 4.3.

    No ``DuplicateBooking`` rule: see the module docstring (the SQL checker covers it)."""
    exprs = _exprs(names, RATE_WINDOW[pace])
    return [
        AlertRule(
            name,
            exprs[name],
            scaled_for(real_s, pace),
            severity,
            summary,
            "Part 4.3 " + severity if name != "InstanceDown" else "scrape health",
        )
        for name, real_s, severity, summary in _TABLE
    ]


def render_rules(rules: list[AlertRule]) -> str:
    """A Prometheus rules file: one group, ``severity`` label, summary and playbook notes."""
    entries = []
    for r in rules:
        entry: dict[str, object] = {"alert": r.name, "expr": r.expr}
        if r.for_s:
            entry["for"] = f"{r.for_s // 60}m" if r.for_s % 60 == 0 else f"{r.for_s}s"
        entry["labels"] = {"severity": r.severity}
        entry["annotations"] = {"summary": r.summary, "playbook": r.playbook_ref}
        entries.append(entry)
    document = {"groups": [{"name": GROUP, "rules": entries}]}
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, width=100)


class _Dumper(yaml.SafeDumper):
    """Multi-line expressions as ``|`` blocks, so the exported file reads like PromQL."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def check_rules(path: Path, timeout_s: float = 30.0) -> None:
    """Validate ``path`` with ``promtool check rules``; raises ``RulesError`` on refusal."""
    promtool = require("promtool", package="prometheus")
    try:
        done = subprocess.run(  # noqa: S603 - fixed binary, our own file
            [promtool, "check", "rules", str(path)],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise RulesError(
            f"promtool check rules {path} did not finish in {timeout_s:.0f} s"
        ) from None
    if done.returncode != 0:
        output = (done.stderr + done.stdout).strip()
        raise RulesError(f"promtool refused {path}:\n{output}")
