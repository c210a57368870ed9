"""The embedded stack end to end: real programs, real connections through the proxies."""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from gameday.alerts import aligned_now
from gameday.faults import FaultError, build
from gameday.stack.monitoring import Prometheus
from gameday.stack.processes import alive
from gameday.stack.smtp import SmtpSink
from gameday.stack.stack import Stack, wait_for
from gameday.stack.state import read_state


def test_every_part_runs_on_loopback_and_the_state_file_says_where(stack: Stack) -> None:
    state = read_state(stack.dir)
    assert state is not None
    assert state["owner_pid"] == os.getpid()
    expected = {"db", "redis", "provider", "smtp", "proxy", "w1", "w2", "alertmanager",
                "prometheus"}  # fmt: skip
    assert set(state["parts"]) == expected
    for name, part in state["parts"].items():
        assert part["pid"], name
        assert alive(part["pid"]), name
        assert "127.0.0.1" in part["address"], (name, part["address"])
    dependencies = ("db", "redis", "provider", "smtp")
    links = {f"w{i}.{d}" for i in (1, 2) for d in dependencies} | {"ingress"}
    assert set(state["links"]) == links
    for worker in stack.workers.values():
        status, body = worker.health("ready")
        assert status == 200, body


def test_a_booking_is_paid_confirmed_and_mailed_through_the_proxies(stack: Stack) -> None:
    """Hold → pay → the provider's webhook reaches a worker through the ingress → the
    confirmation email reaches the SMTP sink through a worker's SMTP link."""
    headers = stack.login()
    start = (datetime.now(UTC) + timedelta(days=40)).replace(minute=0, second=0, microsecond=0)
    http = httpx.Client(base_url=stack.ingress_url, timeout=15, headers=headers)
    end = start + timedelta(hours=1)
    body = {"resource_id": 1, "starts_at": start.isoformat(), "ends_at": end.isoformat()}
    held = http.post("/bookings", json=body)
    assert held.status_code == 201, held.text
    booking = held.json()["id"]
    paid = http.post(f"/bookings/{booking}/payment", json={"payment_method": "4242424242424242"},
                     headers={"Idempotency-Key": uuid.uuid4().hex})  # fmt: skip
    assert paid.status_code in (200, 201), paid.text
    sink = stack.parts["smtp"]
    assert isinstance(sink, SmtpSink)
    before = sink.messages()

    def confirmed() -> bool:
        return bool(http.get(f"/bookings/{booking}").json()["status"] == "confirmed")

    assert wait_for(confirmed, 15)
    assert wait_for(lambda: sink.messages() > before, 15)
    http.close()


def test_a_workers_database_link_goes_down_and_comes_back_without_a_restart(
    healed: Stack,
) -> None:
    registry = healed.faults
    assert registry is not None
    w1, w2 = healed.workers["w1"], healed.workers["w2"]
    pid = w1.pid
    fault = registry.inject(build("down", "w1.db", {}), 60)
    status, body = w1.health("ready")
    assert status == 503
    assert "database" in str(body)
    assert w2.health("ready")[0] == 200  # only one instance is hit
    registry.heal(fault.id)
    assert wait_for(lambda: w1.health("ready")[0] == 200, 10)
    assert w1.pid == pid


def test_kill_pause_and_restart_are_seen_through_health_and_pids(healed: Stack) -> None:
    registry = healed.faults
    assert registry is not None
    w1, w2 = healed.workers["w1"], healed.workers["w2"]
    killed_pid = w1.pid
    assert killed_pid is not None
    kill = registry.inject(build("kill", "w1", {}), 60)
    assert wait_for(lambda: not alive(killed_pid), 5)
    assert w1.health("live")[0] == 0
    # The ingress skips the dead worker: the service as a whole still answers.
    assert httpx.get(f"{healed.ingress_url}/health/live", timeout=5).status_code == 200
    registry.heal(kill.id)
    assert w1.pid != killed_pid
    assert wait_for(lambda: w1.health("ready")[0] == 200, 15)

    paused_pid = w2.pid
    pause = registry.inject(build("pause", "w2", {}), 60)
    assert wait_for(lambda: _state_of(paused_pid) == "T", 5)  # stops when next scheduled
    assert w2.health("live", timeout_s=0.5)[0] == 0
    registry.heal(pause.id)
    assert wait_for(lambda: w2.health("ready")[0] == 200, 10)
    assert w2.pid == paused_pid

    redis_pid = healed.parts["redis"].pid
    registry.inject(build("restart", "redis", {}), 60)
    assert healed.parts["redis"].pid != redis_pid
    assert wait_for(lambda: all(w.health("ready")[0] == 200 for w in healed.workers.values()), 15)


def test_a_fault_heals_itself_after_its_duration(healed: Stack) -> None:
    registry = healed.faults
    assert registry is not None
    registry.inject(build("down", "w2.redis", {}), 0.5)
    assert wait_for(lambda: registry.active() == [], 5)
    assert [e.reason for e in registry.timeline if e.action == "healed"][-1] == "expired"


def test_process_faults_refuse_what_is_not_a_process_of_the_stack(healed: Stack) -> None:
    registry = healed.faults
    assert registry is not None
    for target in ("proxy", "w9"):
        with pytest.raises(FaultError, match="no process matches"):
            registry.inject(build("kill", target, {}), 5)


def test_resource_faults_are_bounded_and_removed(healed: Stack) -> None:
    registry = healed.faults
    assert registry is not None
    hog = registry.inject(build("memory", "host", {"mb": 64}), 30)
    pid = hog.handle["pids"][0]
    assert wait_for(lambda: _rss_mb(pid) >= 60, 10), _rss_mb(pid)
    registry.heal(hog.id)
    assert wait_for(lambda: not alive(pid), 5)

    burn = registry.inject(build("cpu", "host", {"workers": 1}), 30)
    burner = burn.handle["pids"][0]
    assert wait_for(lambda: _cpu_ticks(burner) > 20, 10)  # > 0.2 s of CPU: it burns
    registry.heal(burn.id)
    assert wait_for(lambda: not alive(burner), 5)

    fill = registry.inject(build("disk_fill", "host", {"mb": 8}), 30)
    path = fill.handle["path"]
    assert os.stat(path).st_blocks * 512 >= 8 << 20  # allocated, not sparse
    registry.heal(fill.id)
    assert not os.path.exists(path)
    too_big = {"mb": 1, "leave_free_mb": 1 << 40}
    with pytest.raises(FaultError, match="below leave_free_mb"):
        registry.inject(build("disk_fill", "host", too_big), 30)


def _state_of(pid: int | None) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return 0.0


def _cpu_ticks(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except FileNotFoundError:
        return 0


def test_prometheus_scrapes_every_part_and_a_killed_worker_pages_through_alertmanager(
    healed: Stack,
) -> None:
    monitoring = healed.monitoring
    assert monitoring is not None
    assert monitoring.prometheus is not None
    prometheus = monitoring.prometheus.server
    assert isinstance(prometheus, Prometheus)
    targets = prometheus.wait_for_targets_up(30)
    assert {t["job"] for t in targets} == {"bookings", "gameday_proxy", "stripe_emulator"}
    assert len([t for t in targets if t["job"] == "bookings"]) == 2
    registry = healed.faults
    assert registry is not None
    since = aligned_now()
    kill = registry.inject(build("kill", "w2", {}), 60)
    fired = monitoring.receiver.wait_for("InstanceDown", "firing", timeout_s=30, since=since)
    assert fired is not None
    assert fired.labels.get("instance") == healed.workers["w2"].address.removeprefix("http://")
    detected_s = (fired.received_at - since).total_seconds()
    assert detected_s < 20, detected_s
    registry.heal(kill.id)
    resolved = monitoring.receiver.wait_for("InstanceDown", "resolved", timeout_s=30, since=since)
    assert resolved is not None


def test_token_expiry_makes_the_drill_clients_tokens_expire_mid_flow(healed: Stack) -> None:
    registry = healed.faults
    assert registry is not None
    fault = registry.inject(build("token_expiry", "clients", {"ttl_s": 1}), 30)
    short = healed.login()
    registry.heal(fault.id)
    normal = healed.login()
    time.sleep(1.3)
    url = f"{healed.ingress_url}/bookings/1"
    expired = httpx.get(url, headers=short, timeout=5)
    assert (expired.status_code, expired.json()["error"]) == (401, "token_expired")
    assert httpx.get(url, headers=normal, timeout=5).status_code != 401
