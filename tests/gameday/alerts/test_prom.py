"""The Prometheus and Alertmanager clients against the real programs (Debian's), scraping a
tiny real target whose traffic grows with the clock, so every snapshot row has a value known
in advance. One stack serves the module: Prometheus scrapes a new target only after its
five-second discovery tick, and everything else here takes milliseconds.
"""

from __future__ import annotations

import itertools
import json
import math
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar
from wsgiref.simple_server import WSGIServer

import pytest
from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from gameday.alerts import MetricNames, drill_rules, render_rules
from gameday.alerts.prom import (
    AlertmanagerClient,
    PromError,
    PrometheusClient,
    Snapshot,
    snapshot,
    snapshot_queries,
)
from gameday.stack.monitoring import Alertmanager, Prometheus
from gameday.stack.processes import free_port

NAMES = MetricNames()
T = TypeVar("T")


class Traffic(Collector):
    """Counters proportional to the time since start: every ratio and quantile is exact.

    A second: 100 requests on ``/bookings`` (4 of them 500s; 90 under 0.5 s, 99 under 2.5 s),
    50 webhooks (1 refused), 100 cache lookups (80 hits), plus scrapes of ``/metrics`` that
    fail and are slow (both must be left out). One duplicate refund: that alert fires."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def collect(self) -> Iterator[Metric]:
        s = time.monotonic() - self.started
        requests = CounterMetricFamily(NAMES.requests, "", labels=["route", "method", "status"])
        for route, method, status, per_s in (
            ("/bookings", "POST", "200", 96), ("/bookings", "POST", "500", 4),
            (NAMES.webhook_route, "POST", "200", 49), (NAMES.webhook_route, "POST", "400", 1),
            ("/metrics", "GET", "500", 1000),
        ):  # fmt: skip
            requests.add_metric([route, method, status], per_s * s)
        yield requests
        latency = HistogramMetricFamily(
            NAMES.latency_bucket.removesuffix("_bucket"), "", labels=["route", "method"]
        )
        latency.add_metric(["/bookings", "POST"], [("0.5", 90 * s), ("2.5", 99 * s),
                                                   ("+Inf", 100 * s)], 50 * s)  # fmt: skip
        latency.add_metric(["/metrics", "GET"], [("0.5", 0), ("2.5", 0), ("+Inf", 1000 * s)], 0)
        yield latency
        cache = CounterMetricFamily(NAMES.cache_requests, "", labels=["result"])
        cache.add_metric(["hit"], 80 * s)
        cache.add_metric(["miss"], 20 * s)
        yield cache
        refunds = CounterMetricFamily(NAMES.refunds, "", labels=["reason"])
        refunds.add_metric([NAMES.duplicate_refund_reason], 1)
        yield refunds
        for name, value in ((NAMES.db_pool_in_use, 4), (NAMES.db_pool_size, 10),
                            (NAMES.redis_up, 1), (NAMES.lock_timeouts, 3)):  # fmt: skip
            yield GaugeMetricFamily(name, "", value=value)


@dataclass
class Stack:
    prometheus: PrometheusClient
    alertmanager: AlertmanagerClient
    target_port: int


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("prom")
    rules = workdir / "rules.yml"
    rules.write_text(render_rules(drill_rules("fast")))
    registry = CollectorRegistry()
    registry.register(Traffic())
    ProcessCollector(registry=registry)  # process_resident_memory_bytes, as most services
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        with (
            Alertmanager(workdir, "http://127.0.0.1:9/nobody-listens") as am,
            Prometheus(
                workdir,
                jobs={"bookings": [f"127.0.0.1:{port}"]},
                rules_file=rules,
                alertmanager_url=am.url,
            ) as prometheus,
            PrometheusClient(prometheus.url) as prom_client,
            AlertmanagerClient(am.url) as am_client,
        ):
            prometheus.wait_for_targets_up(timeout_s=15)
            yield Stack(prom_client, am_client, port)
    finally:
        _shutdown(server, thread)


def _shutdown(server: WSGIServer, thread: threading.Thread) -> None:
    server.shutdown()
    server.server_close()
    thread.join(5)


def eventually(probe: Callable[[], T | None], timeout_s: float = 10.0) -> T:
    """The first truthy answer of ``probe``, polled every 0.1 s."""
    deadline = time.monotonic() + timeout_s
    while True:  # bounded by the deadline
        found = probe()
        if found:
            return found
        assert time.monotonic() < deadline, f"nothing within {timeout_s} s"
        time.sleep(0.1)


def test_both_report_ready(stack: Stack) -> None:
    assert stack.prometheus.ready()
    assert stack.alertmanager.ready()


def test_query_returns_labelled_samples_scalars_and_nan(stack: Stack) -> None:
    [redis] = stack.prometheus.query(NAMES.redis_up)
    assert redis.value == 1.0
    assert redis.labels == {
        "__name__": NAMES.redis_up,
        "job": "bookings",
        "instance": f"127.0.0.1:{stack.target_port}",
    }
    [two] = stack.prometheus.query("1 + 1")
    assert (two.labels, two.value) == ({}, 2.0)
    [nan] = stack.prometheus.query("0 / 0")
    assert math.isnan(nan.value)
    assert stack.prometheus.query("no_such_metric") == []


def test_query_at_a_past_instant(stack: Stack) -> None:
    at = datetime.now(UTC) - timedelta(minutes=5)
    [then] = stack.prometheus.query("time()", at=at)
    assert then.value == pytest.approx(at.timestamp(), abs=0.001)
    assert stack.prometheus.query(NAMES.redis_up, at=at) == []  # before the first scrape


def test_query_range_gives_one_point_per_step(stack: Stack) -> None:
    end = datetime.now(UTC)
    [series] = stack.prometheus.query_range(NAMES.redis_up, end - timedelta(seconds=3), end, 1)
    assert series.labels["job"] == "bookings"
    assert series.points
    assert {v for _, v in series.points} == {1.0}
    times = [t for t, _ in series.points]
    assert all(b - a == pytest.approx(1.0) for a, b in itertools.pairwise(times))


def test_scalar_is_the_first_value_or_none(stack: Stack) -> None:
    assert stack.prometheus.scalar("sum(up)") == 1.0
    assert stack.prometheus.scalar("no_such_metric") is None
    assert stack.prometheus.scalar("0 / 0") is None


def test_snapshot_reads_every_row_of_the_table(stack: Stack) -> None:
    queries = snapshot_queries(NAMES, "15s")
    eventually(lambda: stack.prometheus.scalar(queries["request_rate"]))  # two scrapes in
    taken = snapshot(stack.prometheus, queries)
    assert taken.errors == {}
    v = taken.values
    memory = [k for k in v if k.startswith("resident_memory_bytes{")]
    assert memory == [f'resident_memory_bytes{{instance="127.0.0.1:{stack.target_port}",'
                      f'job="bookings"}}']  # fmt: skip
    assert (v[memory[0]] or 0) > 1_000_000
    assert (v["request_rate"] or 0) > 0  # exact only once the rate window has filled
    expected = {  # users are /bookings and webhooks (150 a second); /metrics is left out
        "error_ratio": 4 / 150, "availability": 1 - 4 / 150, "latency_p95_s": 0.5 + 2 * 5 / 9,
        "latency_p99_s": 2.5, "cache_hit_ratio": 0.8, "db_pool_utilisation": 0.4,
        "redis_up": 1, "webhook_failure_ratio": 0.02, "lock_timeouts": 0, "targets_up": 1,
    }  # fmt: skip
    assert {k: v[k] for k in expected} == pytest.approx(expected, rel=1e-6, abs=1e-9)
    json.dumps(taken.to_json(), allow_nan=False)


def test_a_failed_snapshot_row_is_none_with_its_reason(stack: Stack) -> None:
    taken = snapshot(stack.prometheus, {"broken": "rate(up[", "up": "sum(up)", "none": "nope"})
    assert taken.values == {"broken": None, "up": 1.0, "none": None}
    assert list(taken.errors) == ["broken"]
    assert "bad_data: " in taken.errors["broken"]


def test_snapshot_json_has_no_nan_or_infinity() -> None:
    at = datetime(2025, 1, 1, tzinfo=UTC)
    taken = Snapshot(at, {"p99": math.inf, "gone": None, "rate": 2.5}, {"gone": "x: y"})
    assert json.loads(json.dumps(taken.to_json(), allow_nan=False)) == {
        "at": "2025-01-01T00:00:00+00:00",
        "values": {"p99": "+Inf", "gone": None, "rate": 2.5},
        "errors": {"gone": "x: y"},
    }


def test_a_bad_query_says_why_in_one_line(stack: Stack) -> None:
    with pytest.raises(PromError) as failed:
        stack.prometheus.query("rate(up[")
    message = str(failed.value)
    assert message.startswith(f"Prometheus {stack.prometheus.url}/api/v1/query: bad_data: ")
    assert "parse error" in message
    assert "\n" not in message


def test_a_range_query_refused_says_why(stack: Stack) -> None:
    end = datetime.now(UTC)
    with pytest.raises(PromError, match=r"bad_data: .*end timestamp must not be before start"):
        stack.prometheus.query_range("up", end, end - timedelta(seconds=10), 1)


def test_rules_lists_every_drill_rule_healthy(stack: Stack) -> None:
    def all_evaluated() -> list[dict[str, str]] | None:
        found = stack.prometheus.rules()
        return found if all(r["health"] == "ok" for r in found) else None

    found = eventually(all_evaluated)
    assert {r["name"] for r in found} == {r.name for r in drill_rules("fast")}
    assert {(r["group"], r["type"], r["lastError"]) for r in found} == {
        ("gameday-drill", "alerting", "")
    }
    assert {r["state"] for r in found} <= {"inactive", "pending", "firing"}


def test_both_see_the_alert_that_fired(stack: Stack) -> None:
    def paged() -> list[dict[str, object]]:
        return [a for a in stack.alertmanager.alerts() if a["name"] == "DuplicateChargeDetected"]

    [alert] = eventually(paged)
    assert alert["state"] == "active"
    assert alert["labels"] == {
        "alertname": "DuplicateChargeDetected",
        "severity": "critical",
        "job": "bookings",
        "instance": f"127.0.0.1:{stack.target_port}",
        "reason": NAMES.duplicate_refund_reason,
    }
    assert datetime.fromisoformat(str(alert["startsAt"])) <= datetime.now(UTC)
    assert "DuplicateChargeDetected" in {a["name"] for a in stack.alertmanager.alerts(False)}
    firing = [a for a in stack.prometheus.alerts() if a["name"] == "DuplicateChargeDetected"]
    assert [a["state"] for a in firing] == ["firing"]


def test_connection_refused_is_a_clear_message() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with PrometheusClient(url) as prom, AlertmanagerClient(url) as am:
        assert not prom.ready()
        assert not am.ready()
        with pytest.raises(PromError) as failed:
            prom.query("up")
        assert str(failed.value) == f"cannot reach Prometheus at {url}: connection refused"
        with pytest.raises(PromError, match=f"^cannot reach Alertmanager at {url}: connection"):
            am.alerts()


def test_a_server_that_never_answers_times_out(tmp_path: Path) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # the kernel completes the handshake; nobody ever reads
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with PrometheusClient(url, timeout_s=0.3) as prom:
            started = time.monotonic()
            with pytest.raises(PromError, match=r"did not answer /api/v1/query within 0.3 s"):
                prom.query("up")
            assert time.monotonic() - started < 2


def test_something_that_is_not_prometheus_is_named(stack: Stack) -> None:
    url = f"http://127.0.0.1:{stack.target_port}"  # a /metrics server answers any path
    with PrometheusClient(url) as prom, pytest.raises(PromError) as failed:
        prom.query("up")
    assert str(failed.value) == (
        f"Prometheus {url}/api/v1/query: HTTP 200, not a Prometheus API answer"
    )


def test_any_http_url_is_accepted_and_credentials_never_shown() -> None:
    with PrometheusClient("https://ops:s3cret@prometheus.example.com/prom/") as prom:
        assert prom.url == "https://prometheus.example.com/prom"
    with pytest.raises(PromError, match="must look like http://host:port, got 'localhost:9090'"):
        PrometheusClient("localhost:9090")
    with pytest.raises(PromError, match="Prometheus URL 'http://host:port9'"):
        PrometheusClient("http://host:port9")
