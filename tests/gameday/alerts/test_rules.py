"""The generated rules: valid for promtool at both paces, scaled from one table, and — run
through ``promtool test rules`` on synthetic series — firing when the playbook says."""

from __future__ import annotations

import dataclasses
import importlib
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from gameday.alerts import (
    AlertRule,
    MetricNames,
    Pace,
    RulesError,
    check_rules,
    drill_rules,
    render_rules,
    scaled_for,
)

PLAYBOOK_4_3 = {
    "ApiErrorRateHigh": ("critical", 300),
    "DuplicateChargeDetected": ("critical", 0),
    "DbConnectionUtilizationHigh": ("critical", 180),
    "ApiLatencyP95High": ("high", 600),
    "WebhookFailureRateHigh": ("high", 600),
    "RedisUnavailable": ("high", 120),
    "CacheHitRateLow": ("medium", 900),
    "LockWaitTimeoutsIncreasing": ("medium", 600),
}


@pytest.mark.parametrize(
    ("real_s", "pace", "expected"),
    [
        (300, "real", 300),
        (300, "fast", 10),
        (180, "fast", 6),
        (120, "fast", 4),
        (600, "fast", 20),
        (900, "fast", 30),
        (60, "fast", 2),
        (31, "fast", 2),  # the floor: never fire on one evaluation
        (0, "fast", 0),  # "> 0" fires at once at either pace
        (0, "real", 0),
    ],
)
def test_for_windows_scale_with_the_pace(real_s: int, pace: Pace, expected: int) -> None:
    assert scaled_for(real_s, pace) == expected


@pytest.mark.parametrize("pace", ["fast", "real"])
def test_rules_follow_the_playbook(pace: Pace) -> None:
    rules = {r.name: r for r in drill_rules(pace)}
    assert rules["InstanceDown"].expr == "up == 0"
    assert rules["InstanceDown"].for_s == (2 if pace == "fast" else 60)
    assert set(rules) == {"InstanceDown", *PLAYBOOK_4_3}
    for name, (severity, real_s) in PLAYBOOK_4_3.items():
        assert (rules[name].severity, rules[name].for_s) == (severity, scaled_for(real_s, pace))
        assert rules[name].playbook_ref == f"Part 4.3 {severity}"


def test_a_teams_own_metric_names_replace_the_defaults() -> None:
    names = MetricNames(requests="http_server_requests_total", redis_up="cache_backend_up")
    exprs = " ".join(r.expr for r in drill_rules("real", names))
    assert "http_server_requests_total" in exprs
    assert "cache_backend_up" in exprs
    assert "bookings_http_requests_total" not in exprs
    assert "bookings_redis_up" not in exprs


@pytest.mark.parametrize("pace", ["fast", "real"])
def test_the_rendered_file_passes_promtool(pace: Pace, tmp_path: Path) -> None:
    path = tmp_path / "rules.yml"
    path.write_text(render_rules(drill_rules(pace)))
    check_rules(path)
    group = yaml.safe_load(path.read_text())["groups"][0]
    assert group["name"] == "gameday-drill"
    down = group["rules"][0]
    assert down["for"] == ("2s" if pace == "fast" else "1m")
    assert down["labels"] == {"severity": "critical"}
    assert set(down["annotations"]) == {"summary", "playbook"}
    duplicate = next(r for r in group["rules"] if r["alert"] == "DuplicateChargeDetected")
    assert "for" not in duplicate


def test_a_broken_rule_is_refused_with_promtools_words(tmp_path: Path) -> None:
    broken = AlertRule("Broken", "rate(up[15s) > 0", 2, "high", "never valid")
    path = tmp_path / "rules.yml"
    path.write_text(render_rules([*drill_rules("fast"), broken]))
    with pytest.raises(RulesError) as refused:
        check_rules(path)
    assert '"Broken": could not parse expression' in str(refused.value)
    assert "parse error" in str(refused.value)


# -- the rules' behaviour, through promtool's own rule evaluator --------------------------------
JOB = {"job": "bookings", "instance": "127.0.0.1:9000"}
FAST = {r.name: r for r in drill_rules("fast")}
Check = tuple[str, str, dict[str, str] | None]
"""(alert name, evaluation time, labels it fires with beside severity, or None: silent)."""


def _series(metric: str, values: str, **labels: str) -> dict[str, str]:
    inner = ",".join(f'{k}="{v}"' for k, v in {**JOB, **labels}.items())
    return {"series": f"{metric}{{{inner}}}", "values": values}


def _expected(rule: AlertRule, labels: dict[str, str] | None) -> list[dict[str, Any]]:
    if labels is None:
        return []
    summary = re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m[1]], rule.summary)
    annotations = {"summary": summary, "playbook": rule.playbook_ref}
    return [{"exp_labels": {"severity": rule.severity, **labels}, "exp_annotations": annotations}]


def _promtool_test(tmp_path: Path, series: list[dict[str, str]], checks: list[Check]) -> None:
    """Evaluate the fast-pace rules on ``series`` (1 s apart) with ``promtool test rules``."""
    (tmp_path / "rules.yml").write_text(render_rules(list(FAST.values())))
    tests = [
        {"eval_time": at, "alertname": name, "exp_alerts": _expected(FAST[name], labels)}
        for name, at, labels in checks
    ]
    spec = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1s",
        "tests": [{"interval": "1s", "input_series": series, "alert_rule_test": tests}],
    }
    (tmp_path / "test.yml").write_text(yaml.safe_dump(spec, sort_keys=False))
    done = subprocess.run(
        ["promtool", "test", "rules", "test.yml"],  # noqa: S607 - Debian's promtool on PATH
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_api_error_rate_fires_after_its_window_and_ignores_scrapes(tmp_path: Path) -> None:
    ok = {"route": "/bookings", "method": "POST", "status": "200"}
    scrapes = {"route": "/metrics", "method": "GET", "status": "200"}
    series = [
        _series("bookings_http_requests_total", "0+100x60", **ok),
        _series("bookings_http_requests_total", "0x20 0+10x40", **{**ok, "status": "500"}),
        _series("bookings_http_requests_total", "0+1000x60", **scrapes),  # would dilute to <1%
    ]
    # ~9% 5xx from t=20 s: over 5% within ~2 s, then the 10 s "for".
    job = {"job": "bookings"}
    checks: list[Check] = [
        ("ApiErrorRateHigh", "20s", None),
        ("ApiErrorRateHigh", "26s", None),
        ("ApiErrorRateHigh", "40s", job),
    ]
    _promtool_test(tmp_path, series, checks)


def test_a_first_duplicate_refund_fires_although_its_counter_is_born_at_one(
    tmp_path: Path,
) -> None:
    labels = {"reason": "duplicate_charge"}
    series = [_series("bookings_refunds_total", "_x10 1x40", **labels)]
    fired = {**JOB, **labels}
    checks: list[Check] = [
        ("DuplicateChargeDetected", "5s", None),
        ("DuplicateChargeDetected", "12s", fired),
        ("DuplicateChargeDetected", "40s", None),  # no new duplicate for longer than the window
    ]
    _promtool_test(tmp_path, series, checks)


def test_redis_down_pages_only_while_requests_flow(tmp_path: Path) -> None:
    route = {"route": "/resources/{resource_id}/availability", "method": "GET", "status": "200"}
    series = [
        _series("bookings_redis_up", "1x5 0x60"),  # down from t=6 s
        _series("bookings_http_requests_total", "0+10x30 300x30", **route),  # idle after 30 s
    ]
    checks: list[Check] = [
        ("RedisUnavailable", "5s", None),
        ("RedisUnavailable", "15s", JOB),
        ("RedisUnavailable", "55s", None),
    ]
    _promtool_test(tmp_path, series, checks)


def test_instance_down_needs_two_seconds_of_failed_scrapes(tmp_path: Path) -> None:
    series = [_series("up", "1x5 0x10 1x10")]
    checks: list[Check] = [
        ("InstanceDown", "6s", None),
        ("InstanceDown", "8s", JOB),
        ("InstanceDown", "18s", None),
    ]
    _promtool_test(tmp_path, series, checks)


def _buckets(slow_from_s: int, seconds: int) -> list[dict[str, str]]:
    """10 requests a second, all under 0.5 s until ``slow_from_s``, then all 2.5 to 5 s."""
    fast, slow = f"0+10x{slow_from_s} {10 * slow_from_s}x{seconds}", f"0+10x{seconds}"
    route = {"route": "/bookings", "method": "POST"}
    metric = "bookings_http_request_duration_seconds_bucket"
    return [
        *(_series(metric, fast, le=le, **route) for le in ("0.5", "2.5")),
        *(_series(metric, slow, le=le, **route) for le in ("5.0", "+Inf")),
    ]


HOOK = {"route": "/webhooks/stripe", "method": "POST"}
CASES: dict[str, tuple[list[dict[str, str]], list[tuple[str, bool]]]] = {
    "DbConnectionUtilizationHigh": (
        [_series("bookings_db_pool_in_use", "5x10 10x30"),
         _series("bookings_db_pool_size", "10x40")],
        [("10s", False), ("15s", False), ("20s", True)],
    ),
    "ApiLatencyP95High": (_buckets(10, 60), [("8s", False), ("25s", False), ("40s", True)]),
    "WebhookFailureRateHigh": (
        [_series("bookings_http_requests_total", "0+20x60", status="200", **HOOK),
         _series("bookings_http_requests_total", "0x10 0+1x50", status="400", **HOOK)],
        [("10s", False), ("25s", False), ("40s", True)],
    ),
    "CacheHitRateLow": (
        [_series("bookings_cache_requests_total", "0+10x10 100x60", result="hit"),
         _series("bookings_cache_requests_total", "0+1x10 10+10x60", result="miss")],
        [("10s", False), ("30s", False), ("60s", True)],
    ),
    "LockWaitTimeoutsIncreasing": (
        [_series("bookings_db_lock_timeouts", "0x10 1+1x30 31x30")],
        [("10s", False), ("25s", False), ("35s", True), ("60s", False)],
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_threshold_fires_after_its_window_only(name: str, tmp_path: Path) -> None:
    series, points = CASES[name]
    per_instance = name in ("DbConnectionUtilizationHigh", "LockWaitTimeoutsIncreasing")
    labels = JOB if per_instance else {"job": "bookings"}
    checks: list[Check] = [(name, at, labels if fires else None) for at, fires in points]
    _promtool_test(tmp_path, series, checks)


def test_the_package_exports_exactly_its_public_names() -> None:
    module = importlib.import_module("gameday.alerts")
    submodules = {"events", "prom", "receiver", "rules"}
    public = {n for n in vars(module) if not n.startswith("_")} - submodules
    assert set(module.__all__) == public
    assert dataclasses.is_dataclass(module.AlertRule)
