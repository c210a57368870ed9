"""Prometheus and Alertmanager, end to end with real programs: a target goes down, the
generated ``InstanceDown`` rule fires, Alertmanager pages the harness's receiver, and the
resolution follows when the target comes back. The emulator's ``/metrics`` is scraped too.

One stack serves the module (Prometheus scrapes a new target only after its first five-second
discovery tick, so starting it once keeps the module well under a minute).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit
from wsgiref.simple_server import WSGIServer

import pytest
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from gameday.alerts import AlertReceiver, aligned_now, drill_rules, render_rules
from gameday.stack.monitoring import Alertmanager, MonitoringError, Prometheus
from gameday.stack.processes import (
    StartError,
    alive,
    free_port,
    read_line,
    spawn,
    stop,
)

log = logging.getLogger(__name__)  # measurements: run with --log-cli-level=INFO to see them
DETECT_BOUND_S = 8.0
"""Scrape (1 s) + ``for`` (2 s) + evaluation (1 s) + Alertmanager, with room for a busy CI."""


class Target:
    """A tiny real ``/metrics`` endpoint that can be stopped and started on the same port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.registry = CollectorRegistry()
        Gauge("drill_target_ready", "1 while serving.", registry=self.registry).set(1)
        self._served: tuple[WSGIServer, threading.Thread] | None = None
        self.start()

    def start(self) -> None:
        self._served = start_http_server(self.port, addr="127.0.0.1", registry=self.registry)

    def stop(self) -> None:
        served, self._served = self._served, None
        if served is not None:
            server, thread = served
            server.shutdown()
            server.server_close()
            thread.join(5)


@contextlib.contextmanager
def emulator(workdir: Path) -> Iterator[str]:
    """``python -m stripe_emulator`` on a free port, as the stack starts it; its URL."""
    argv = [sys.executable, "-m", "stripe_emulator", "--host", "127.0.0.1", "--port", "0"]
    proc = spawn(argv, log=workdir / "provider.log", stdout_pipe=True)
    try:  # the ready line is all it prints to stdout (logs go to stderr), so no drain
        yield read_line(proc, "stripe-emulator listening on ", what="emulator", timeout_s=20)
    finally:
        stop(proc)


@dataclass
class Stack:
    target: Target
    receiver: AlertReceiver
    alertmanager: Alertmanager
    prometheus: Prometheus


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("monitoring")
    rules = workdir / "rules.yml"
    rules.write_text(render_rules(drill_rules("fast")))
    target = Target()
    try:
        with (
            emulator(workdir) as provider_url,
            AlertReceiver(events_file=workdir / "alerts.jsonl") as receiver,
            Alertmanager(workdir, receiver.url) as am,
            Prometheus(
                workdir,
                jobs={
                    "bookings": [f"127.0.0.1:{target.port}"],
                    "stripe-emulator": [urlsplit(provider_url).netloc],
                },
                rules_file=rules,
                alertmanager_url=am.url,
            ) as prometheus,
        ):
            yield Stack(target, receiver, am, prometheus)
            pids = (am.pid, prometheus.pid)
        assert not any(alive(pid) for pid in pids), "a monitoring process outlived the stack"
    finally:
        target.stop()


def test_both_start_quickly_on_loopback(stack: Stack) -> None:
    for part in (stack.alertmanager, stack.prometheus):
        assert part.started_in_s is not None
        log.info("%s started in %.2f s", part.name, part.started_in_s)
        assert part.started_in_s < 5.0
        assert part.url.startswith("http://127.0.0.1:")


def test_prometheus_scrapes_every_target(stack: Stack) -> None:
    targets = stack.prometheus.wait_for_targets_up(timeout_s=15)
    assert {(t["job"], t["health"]) for t in targets} == {
        ("bookings", "up"),
        ("stripe-emulator", "up"),
    }
    up = stack.prometheus.query("up")
    assert sorted(s["metric"]["job"] for s in up) == ["bookings", "stripe-emulator"]


def test_the_emulators_metrics_are_in_prometheus(stack: Stack) -> None:
    stack.prometheus.wait_for_targets_up(timeout_s=15)
    switches = stack.prometheus.query('stripe_emulator_fault_switch_active{switch="error_rate"}')
    assert [s["value"][1] for s in switches] == ["0"]
    # A scrape is counted once answered, so the second scrape is the first to show one.
    expr = 'stripe_emulator_http_requests_total{route="/metrics",status="200"} >= 1'
    deadline = time.monotonic() + 5
    while not stack.prometheus.query(expr) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert stack.prometheus.query(expr)


def test_a_bad_query_says_why(stack: Stack) -> None:
    with pytest.raises(MonitoringError, match="parse error"):
        stack.prometheus.query("rate(up[")


def test_instance_down_pages_the_harness_and_resolves(stack: Stack) -> None:
    stack.prometheus.wait_for_targets_up(timeout_s=15)
    injected, started = aligned_now(), time.monotonic()
    stack.target.stop()
    fired = stack.receiver.wait_for("InstanceDown", since=injected, timeout_s=DETECT_BOUND_S)
    assert fired is not None, f"InstanceDown did not arrive; events: {stack.receiver.events()}"
    detect_s = time.monotonic() - started
    log.info("InstanceDown reached the receiver %.2f s after the target stopped", detect_s)
    assert fired.labels["job"] == "bookings"
    assert fired.labels["severity"] == "critical"
    assert stack.receiver.firing() == {"InstanceDown"}
    assert any(a["labels"]["alertname"] == "InstanceDown" for a in stack.alertmanager.alerts())

    healed, started = aligned_now(), time.monotonic()
    stack.target.start()
    resolved = stack.receiver.wait_for("InstanceDown", "resolved", since=healed, timeout_s=10)
    assert resolved is not None
    log.info("resolved %.2f s after the target came back", time.monotonic() - started)
    assert resolved.labels == fired.labels
    assert stack.receiver.firing() == set()


def test_a_bad_rules_file_fails_the_start_with_prometheus_words(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text("groups:\n- name: g\n  rules:\n  - alert: Broken\n    expr: rate(up[\n")
    prometheus = Prometheus(
        tmp_path, jobs={}, rules_file=rules, alertmanager_url="http://127.0.0.1:9"
    )
    with pytest.raises(StartError, match="prometheus exited") as failed:
        prometheus.start()
    assert "parse error" in str(failed.value)
    with pytest.raises(StartError, match="not started"):
        _ = prometheus.pid  # the failed start cleaned up after itself


def test_stop_leaves_no_process(tmp_path: Path) -> None:
    with Alertmanager(tmp_path, "http://127.0.0.1:9/alerts") as am:
        pid = am.pid
        assert am.alerts() == []
    assert not alive(pid)


def test_a_killed_part_starts_again_on_the_same_port(tmp_path: Path) -> None:
    with Alertmanager(tmp_path, "http://127.0.0.1:9/alerts") as am:
        first, url = am.pid, am.url
        os.kill(first, signal.SIGKILL)
        am.proc.wait(5)
        am.start()
        assert am.pid != first
        assert am.url == url
        assert am.alerts() == []
    assert not alive(first)
