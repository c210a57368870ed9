"""Every drill rule, at both paces, through ``promtool test rules`` (Prometheus' own rule
evaluator): it fires exactly when its ``for`` window has elapsed after the fault, is still
pending one evaluation before, and never fires on a healthy system whose signals are busy but
on the right side of the threshold (including traffic the rules must ignore).

The series are generated from ``MetricNames``, so a team's renamed metrics get the same
proof. A rule pointed at a wrong metric makes its firing test fail: a harness that cannot
fail proves nothing, so that is tested too.

Time is counted in steps of the pace's scrape interval (1 s fast, 15 s real). The fault
starts at ``onset`` (after two rate windows of healthy traffic) and is abrupt, so every
expression turns true at the onset's evaluation and the firing time is exact.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from gameday.alerts import AlertRule, MetricNames, Pace, drill_rules, render_rules
from gameday.alerts.rules import RATE_WINDOW

Series = dict[str, str]
JOB = {"job": "bookings", "instance": "10.0.0.7:8000"}
INTERVAL_S: dict[Pace, int] = {"fast": 1, "real": 15}
"""The drill scrapes every second; 15 s is the slowest scrape the real-pace windows allow."""


@dataclass(frozen=True)
class Variant:
    id: str
    pace: Pace
    names: MetricNames
    excluded_route: str
    """A route ``names.unobserved_routes`` matches: its traffic must not count."""


CUSTOM = MetricNames(
    requests="http_server_requests_total",
    latency_bucket="http_server_duration_seconds_bucket",
    unobserved_routes="/internal/.*",
    webhook_route="/hooks/payments",
    db_pool_in_use="db_connections_busy",
    db_pool_size="db_connections_max",
    refunds="payments_refunds_total",
    duplicate_refund_reason="duplicate",
    redis_up="cache_backend_up",
    cache_requests="cache_lookups_total",
    lock_timeouts="db_lock_wait_timeouts",
)
VARIANTS = (
    Variant("fast", "fast", MetricNames(), "/metrics"),
    Variant("real", "real", MetricNames(), "/health/ready"),
    Variant("fast-renamed", "fast", CUSTOM, "/internal/scrape"),
)


@dataclass(frozen=True)
class Timeline:
    """Steps 0..``last``: healthy before ``onset``, faulty from it (None: healthy throughout)."""

    onset: int | None
    last: int

    @property
    def faulty(self) -> bool:
        return self.onset is not None and self.onset <= self.last


def _segment(start: str, values: int) -> str:
    # "a+bxn" is n+1 values, but "_xn" is n missing ones.
    return f"_x{values}" if start == "_" else f"{start}x{values - 1}"


def phases(t: Timeline, healthy: str, faulty: str) -> str:
    """Expanding notation: ``healthy`` (e.g. ``"1"``) until the onset, then ``faulty``."""
    if t.onset is None or not t.faulty:
        return _segment(healthy, t.last + 1)
    return f"{_segment(healthy, t.onset)} {_segment(faulty, t.last - t.onset + 1)}"


def counter(t: Timeline, per_step: int, jump: int = 0, then: int | None = None) -> str:
    """A counter rising ``per_step`` a step; at the onset it jumps by ``jump`` and from there
    rises ``then`` a step (a burst no rate window can average away)."""
    at_onset = ((t.onset or 0) - 1) * per_step + jump
    return phases(t, f"0+{per_step}", f"{at_onset}+{per_step if then is None else then}")


def series(metric: str, values: str, **labels: str) -> Series:
    inner = ",".join(f'{k}="{v}"' for k, v in {**JOB, **labels}.items())
    return {"series": f"{metric}{{{inner}}}", "values": values}


Build = Callable[[MetricNames, str, Timeline], list[Series]]


def _instance_down(n: MetricNames, excluded: str, t: Timeline) -> list[Series]:
    return [series("up", phases(t, "1", "0"))]


def _api_errors(n: MetricNames, excluded: str, t: Timeline) -> list[Series]:
    users = {"route": "/bookings", "method": "POST"}
    return [
        series(n.requests, counter(t, 100), status="200", **users),
        series(n.requests, counter(t, 1, jump=1000, then=100), status="503", **users),  # 1%
        series(n.requests, counter(t, 1000), route=excluded, method="GET", status="500"),
    ]


def _duplicates(n: MetricNames, excluded: str, t: Timeline) -> list[Series]:
    ordinary = series(n.refunds, counter(t, 1), reason="customer_request")
    if t.onset is None:
        return [ordinary]
    born = phases(t, "_", "1")  # a labelled counter appears at 1 with its first duplicate
    return [ordinary, series(n.refunds, born, reason=n.duplicate_refund_reason)]


def _db_pool(n: MetricNames, excluded: str, t: Timeline) -> list[Series]:
    return [
        series(n.db_pool_in_use, phases(t, "8", "10")),  # 80% is busy, not critical
        series(n.db_pool_size, phases(t, "10", "10")),
    ]


def _latency(n: MetricNames, excluded: str, t: Timeline) -> list[Series]:
    """100 requests a step, 97 under 0.5 s and 3 in (2.5, 5]; from the onset 1000 more a
    step, all slow. Slow scrapes of an excluded route would push a healthy p95 over 2.5 s."""
    route = {"route": "/bookings", "method": "POST"}
    fast, slow = counter(t, 97), counter(t, 100, jump=10_000, then=1097)
    return [
        *(series(n.latency_bucket, fast, le=le, **route) for le in ("0.5", "2.5")),
        *(series(n.latency_bucket, slow, le=le, **route) for le in ("5.0", "+Inf")),
        *(series(n.latency_bucket, phases(t, "0", "0"), le=le, route=excluded, method="GET")
          for le in ("0.5", "2.5")),
        *(series(n.latency_bucket, counter(t, 1000), le=le, route=excluded, method="GET")
          for le in ("5.0", "+Inf")),
    ]  # fmt: skip


def _webhooks(n: MetricNames, excluded: str, t: Timeline) -> list[Series]:
    hook = {"route": n.webhook_route, "method": "POST"}
    return [
        series(n.requests, counter(t, 100), status="200", **hook),
        series(n.requests, counter(t, 1, jump=1000, then=100), status="400", **hook),  # 1%
        series(n.requests, counter(t, 50), route="/bookings", method="POST", status="500"),
    ]


def _redis(n: MetricNames, excluded: str, t: Timeline) -> list[Series]:
    return [
        series(n.redis_up, phases(t, "1", "0")),
        series(n.requests, counter(t, 10), route="/availability", method="GET", status="200"),
    ]


def _cache(n: MetricNames, excluded: str, t: Timeline) -> list[Series]:
    return [
        series(n.cache_requests, counter(t, 10), result="hit"),
        series(n.cache_requests, counter(t, 2, jump=10_000, then=100), result="miss"),  # 83%
    ]


def _lock_timeouts(n: MetricNames, excluded: str, t: Timeline) -> list[Series]:
    return [series(n.lock_timeouts, phases(t, "3", "4+1"))]  # old timeouts, then new ones


@dataclass(frozen=True)
class Case:
    build: Build
    keeps: tuple[str, ...]
    """The labels the expression keeps, hence the alert's labels beside ``severity``."""
    sustained: bool = True
    """False: the alert resolves by itself one rate window after the onset."""


PER_INSTANCE = ("job", "instance")
CASES: dict[str, Case] = {
    "InstanceDown": Case(_instance_down, PER_INSTANCE),
    "ApiErrorRateHigh": Case(_api_errors, ("job",)),
    "DuplicateChargeDetected": Case(_duplicates, (*PER_INSTANCE, "reason"), sustained=False),
    "DbConnectionUtilizationHigh": Case(_db_pool, PER_INSTANCE),
    "ApiLatencyP95High": Case(_latency, ("job",)),
    "WebhookFailureRateHigh": Case(_webhooks, ("job",)),
    "RedisUnavailable": Case(_redis, PER_INSTANCE),
    "CacheHitRateLow": Case(_cache, ("job",)),
    "LockWaitTimeoutsIncreasing": Case(_lock_timeouts, PER_INSTANCE),
}


@dataclass(frozen=True)
class Plan:
    """When, in steps, the fault starts, the alert must fire, and the series end."""

    interval_s: int
    window: int
    onset: int
    fire: int
    last: int


def _plan(rule: AlertRule, pace: Pace) -> Plan:
    interval = INTERVAL_S[pace]
    raw = RATE_WINDOW[pace]
    window_s = int(raw[:-1]) * {"s": 1, "m": 60}[raw[-1]]
    assert window_s % interval == 0
    assert rule.for_s % interval == 0, f"{rule.name}: for {rule.for_s} s is off the step grid"
    window = window_s // interval
    onset = 2 * window
    fire = onset + rule.for_s // interval
    return Plan(interval, window, onset, fire, fire + window + 2)


def _expected(rule: AlertRule, case: Case, names: MetricNames) -> list[dict[str, Any]]:
    known = {**JOB, "reason": names.duplicate_refund_reason}
    labels = {k: known[k] for k in case.keeps}
    summary = re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m[1]], rule.summary)
    annotations = {"summary": summary, "playbook": rule.playbook_ref}
    return [{"exp_labels": {"severity": rule.severity, **labels}, "exp_annotations": annotations}]


Check = tuple[int, list[dict[str, Any]]]
"""(step, the alerts expected firing then: empty for none)."""


def promtool_test(
    tmp_path: Path, rules: list[AlertRule], plan: Plan, *,
    alert: str, series_set: list[Series], checks: list[Check],
) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """``promtool test rules`` on the rendered ``rules``, with ``checks`` of one alert."""
    (tmp_path / "rules.yml").write_text(render_rules(rules))
    interval = f"{plan.interval_s}s"
    tests = [
        {"eval_time": f"{step * plan.interval_s}s", "alertname": alert, "exp_alerts": expected}
        for step, expected in checks
    ]
    spec = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": interval,
        "tests": [{"interval": interval, "input_series": series_set, "alert_rule_test": tests}],
    }
    (tmp_path / "test.yml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return subprocess.run(
        ["promtool", "test", "rules", "test.yml"],  # noqa: S607 - Debian's promtool on PATH
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _passes(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 0, done.stdout + done.stderr


CASE_IDS = [pytest.param(v, name, id=f"{v.id}-{name}") for v in VARIANTS for name in CASES]


def _setup(variant: Variant, name: str) -> tuple[list[AlertRule], AlertRule, Case, Plan]:
    rules = drill_rules(variant.pace, variant.names)
    rule = next(r for r in rules if r.name == name)
    return rules, rule, CASES[name], _plan(rule, variant.pace)


@pytest.mark.parametrize("pace", ["fast", "real"])
def test_every_rule_has_a_case(pace: Pace) -> None:
    assert {r.name for r in drill_rules(pace)} == set(CASES)


@pytest.mark.parametrize(("variant", "name"), CASE_IDS)
def test_fires_once_its_for_window_has_elapsed(variant: Variant, name: str, tmp_path: Path) -> None:
    rules, rule, case, plan = _setup(variant, name)
    firing = _expected(rule, case, variant.names)
    after = (plan.last, firing) if case.sustained else (plan.onset + plan.window, [])
    series_set = case.build(variant.names, variant.excluded_route, Timeline(plan.onset, plan.last))
    checks: list[Check] = [(plan.fire, firing), after]
    _passes(promtool_test(tmp_path, rules, plan, alert=name, series_set=series_set, checks=checks))


@pytest.mark.parametrize(("variant", "name"), CASE_IDS)
def test_is_still_pending_one_evaluation_before(
    variant: Variant, name: str, tmp_path: Path
) -> None:
    """The same fault, cut off one step before ``for`` elapses: silent at every step (for
    ``DuplicateChargeDetected``, ``for: 0``, that step is the one before the duplicate)."""
    rules, _, case, plan = _setup(variant, name)
    timeline = Timeline(plan.onset, plan.fire - 1)
    series_set = case.build(variant.names, variant.excluded_route, timeline)
    checks: list[Check] = [(step, []) for step in range(timeline.last + 1)]
    _passes(promtool_test(tmp_path, rules, plan, alert=name, series_set=series_set, checks=checks))


@pytest.mark.parametrize(("variant", "name"), CASE_IDS)
def test_stays_quiet_on_a_healthy_system(variant: Variant, name: str, tmp_path: Path) -> None:
    rules, _, case, plan = _setup(variant, name)
    series_set = case.build(variant.names, variant.excluded_route, Timeline(None, plan.last))
    checks: list[Check] = [(step, []) for step in range(plan.last + 1)]
    _passes(promtool_test(tmp_path, rules, plan, alert=name, series_set=series_set, checks=checks))


def test_a_later_duplicate_fires_again_through_increase(tmp_path: Path) -> None:
    """The counter exists already (1), so only ``increase()`` can see the second one."""
    rules, rule, case, plan = _setup(VARIANTS[0], "DuplicateChargeDetected")
    second = plan.onset + 3 * plan.window
    values = f"_x{plan.onset} 1x{second - plan.onset - 1} 2x{plan.window * 2}"
    series_set = [series("bookings_refunds_total", values, reason="duplicate_charge")]
    firing = _expected(rule, case, MetricNames())
    checks: list[Check] = [(plan.onset, firing), (second - 1, []), (second, firing),
                           (second + plan.window, [])]  # fmt: skip
    _passes(
        promtool_test(tmp_path, rules, plan, alert=rule.name, series_set=series_set, checks=checks)
    )


def _misspelt(rule: AlertRule) -> AlertRule:
    """``rule`` reading metrics that do not exist (what a typo in a rules file does)."""
    wrong = MetricNames(**{
        f: getattr(MetricNames(), f) + "_typo"
        for f in ("requests", "latency_bucket", "db_pool_in_use", "db_pool_size", "refunds",
                  "redis_up", "cache_requests", "lock_timeouts")
    })  # fmt: skip
    expr = next(r.expr for r in drill_rules("fast", wrong) if r.name == rule.name)
    return replace(rule, expr=re.sub(r"\bup\b", "up_typo", expr))


@pytest.mark.parametrize("name", list(CASES))
def test_a_rule_reading_a_wrong_metric_fails_its_firing_test(name: str, tmp_path: Path) -> None:
    rules, rule, case, plan = _setup(VARIANTS[0], name)
    broken = [_misspelt(r) if r.name == name else r for r in rules]
    assert _misspelt(rule).expr != rule.expr
    series_set = case.build(MetricNames(), "/metrics", Timeline(plan.onset, plan.last))
    checks: list[Check] = [(plan.fire, _expected(rule, case, MetricNames()))]
    done = promtool_test(tmp_path, broken, plan, alert=name, series_set=series_set, checks=checks)
    assert done.returncode != 0
    assert f"alertname: {name}" in done.stdout + done.stderr
    assert "got:[]" in done.stdout + done.stderr
