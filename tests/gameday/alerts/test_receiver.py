"""The Alertmanager webhook receiver, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from gameday.alerts import AlertReceiver, aligned_now, read_events
from gameday.alerts.receiver import MAX_BODY, MAX_EVENTS

LABELS = {
    "alertname": "InstanceDown",
    "instance": "127.0.0.1:9100",
    "job": "bookings",
    "severity": "critical",
}


def notification(status: str, *alerts: dict[str, Any]) -> dict[str, Any]:
    """A body shaped exactly like Alertmanager 0.25's webhook (version 4)."""
    return {
        "receiver": "harness",
        "status": status,
        "alerts": list(alerts),
        "groupLabels": {"alertname": "InstanceDown"},
        "commonLabels": LABELS,
        "commonAnnotations": {"summary": "bookings target is down"},
        "externalURL": "http://127.0.0.1:9093",
        "version": "4",
        "groupKey": '{}:{alertname="InstanceDown", instance="127.0.0.1:9100", job="bookings"}',
        "truncatedAlerts": 0,
    }


def alert(status: str, labels: dict[str, str] = LABELS) -> dict[str, Any]:
    return {
        "status": status,
        "labels": labels,
        "annotations": {"summary": "bookings target is down", "playbook": "scrape health"},
        "startsAt": "2025-05-01T10:00:00.123456789Z",
        "endsAt": "2025-05-01T10:00:07.5Z" if status == "resolved" else "0001-01-01T00:00:00Z",
        "generatorURL": "http://127.0.0.1:9090/graph?g0.expr=up+%3D%3D+0",
        "fingerprint": "0af9bb7bb98a29ee",
    }


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[AlertReceiver]:
    with AlertReceiver(events_file=tmp_path / "alerts.jsonl") as rec:
        yield rec


def post(rec: AlertReceiver, body: bytes | dict[str, Any]) -> httpx.Response:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return httpx.post(rec.url, content=content, trust_env=False, timeout=5)


def test_firing_then_resolved_is_recorded(receiver: AlertReceiver, tmp_path: Path) -> None:
    before = aligned_now()
    assert post(receiver, notification("firing", alert("firing"))).status_code == 200
    assert receiver.firing() == {"InstanceDown"}
    assert post(receiver, notification("resolved", alert("resolved"))).status_code == 200
    assert receiver.firing() == set()

    fired, resolved = receiver.events()
    assert (fired.name, fired.status, fired.ends_at) == ("InstanceDown", "firing", None)
    assert fired.labels == LABELS
    assert fired.starts_at.isoformat() == "2025-05-01T10:00:00.123456+00:00"
    assert resolved.ends_at is not None
    assert resolved.ends_at - resolved.starts_at == timedelta(seconds=7.376544)
    assert before <= fired.received_at <= resolved.received_at <= aligned_now()
    assert read_events(tmp_path / "alerts.jsonl") == [fired, resolved]


def test_firing_tracks_each_label_set(receiver: AlertReceiver) -> None:
    other = {**LABELS, "instance": "127.0.0.1:9101"}
    post(receiver, notification("firing", alert("firing"), alert("firing", other)))
    post(receiver, notification("resolved", alert("resolved")))
    assert receiver.firing() == {"InstanceDown"}  # the second worker is still down
    post(receiver, notification("resolved", alert("resolved", other)))
    assert receiver.firing() == set()


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[]",
        orjson.dumps({**notification("firing", alert("firing")), "version": "3"}),
        orjson.dumps(notification("firing", {**alert("firing"), "status": "pending"})),
        orjson.dumps(notification("firing", {**alert("firing"), "labels": {"alertname": 1}})),
        orjson.dumps(notification("firing", {**alert("firing"), "startsAt": "yesterday"})),
    ],
    ids=["not-json", "not-an-object", "version", "status", "labels", "time"],
)
def test_a_malformed_body_is_refused_whole(receiver: AlertReceiver, body: bytes) -> None:
    response = post(receiver, body)
    assert response.status_code == 400
    assert response.json() == {"status": 400}
    assert receiver.events() == []


def test_an_oversized_body_is_refused_unread(receiver: AlertReceiver) -> None:
    response = post(receiver, b" " * (MAX_BODY + 1))
    assert response.status_code == 413
    assert receiver.events() == []


def test_a_request_without_length_or_at_another_path_is_refused(
    receiver: AlertReceiver,
) -> None:
    with socket.create_connection(("127.0.0.1", receiver.port), timeout=5) as raw:
        raw.sendall(b"POST /alerts HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert raw.recv(64).startswith(b"HTTP/1.0 411")
    wrong = httpx.post(receiver.url + "x", content=b"{}", trust_env=False)
    assert wrong.status_code == 404


def test_memory_keeps_only_the_latest_events(receiver: AlertReceiver) -> None:
    for batch in range(3):
        alerts = [alert("firing", {**LABELS, "n": f"{batch}-{i}"}) for i in range(4000)]
        assert receiver.accept(orjson.dumps(notification("firing", *alerts))) == 200
    kept = receiver.events()
    assert len(kept) == MAX_EVENTS
    assert kept[-1].labels["n"] == "2-3999"


def test_wait_for_gives_up_after_its_timeout(receiver: AlertReceiver) -> None:
    started = time.monotonic()
    assert receiver.wait_for("InstanceDown", timeout_s=0.3) is None
    assert 0.3 <= time.monotonic() - started < 1.0


def test_wait_for_wakes_when_the_alert_arrives_and_honours_since(
    receiver: AlertReceiver,
) -> None:
    post(receiver, notification("firing", alert("firing")))
    since = aligned_now()
    assert receiver.wait_for("InstanceDown", timeout_s=0.1, since=since) is None
    late = threading.Timer(0.2, post, (receiver, notification("firing", alert("firing"))))
    late.start()
    started = time.monotonic()
    try:
        event = receiver.wait_for("InstanceDown", timeout_s=5, since=since)
    finally:
        late.join()
    assert event is not None
    assert event.received_at >= since
    assert time.monotonic() - started < 2.0
    assert receiver.wait_for("InstanceDown", "resolved", timeout_s=0) is None


def test_stopping_frees_the_port() -> None:
    rec = AlertReceiver().start()
    rec.stop()
    rec.stop()  # idempotent
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", rec.port))
