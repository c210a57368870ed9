"""The proxy's control API and process life: refusals are JSON 4xx naming what is wrong,
the token is enforced, and the daemon stops on SIGTERM and when its parent dies."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import types
from collections.abc import Callable
from typing import Any

import httpx
import pytest

import gameday.faults.proxy as proxy_package
from gameday.faults.proxy import TOKEN_HEADER, ProxyClient, ProxyError
from gameday.stack.processes import free_port
from tests.gameday.faults.conftest import TOKEN, Daemon, connect, start

MakeLink = Callable[..., tuple[str, int]]


def _http(daemon: Daemon, token: str | None = TOKEN) -> httpx.Client:
    headers = {TOKEN_HEADER: token} if token else {}
    return httpx.Client(base_url=daemon.url, headers=headers, timeout=5)


def test_public_names_are_all_exported() -> None:
    public = {
        name
        for name, value in vars(proxy_package).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public == set(proxy_package.__all__)


def test_unknown_link_is_404_and_healing_it_is_not_an_error(proxy: ProxyClient) -> None:
    with pytest.raises(ProxyError) as info:
        proxy.link("no-such-link")
    assert (info.value.status, info.value.code) == (404, "link_not_found")
    assert "no-such-link" in str(info.value)
    with pytest.raises(ProxyError, match="no-such-link"):
        proxy.add_toxic("no-such-link", "latency", ms=1)
    proxy.remove_toxic("no-such-link", "latency_1")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "latency", "ms": -1}, "ms"),
        ({"kind": "latency", "ms": "fast"}, "ms"),
        ({"kind": "latency", "ms": 10, "jitter_ms": 20}, "jitter_ms"),
        ({"kind": "latency", "speed": 1}, "speed"),
        ({"kind": "loss", "mode": "lose"}, "mode"),
        ({"kind": "loss", "fraction": 1.5}, "fraction"),
        ({"kind": "bandwidth", "bytes_per_s": 0}, "bytes_per_s"),
        ({"kind": "reset_peer"}, "after_bytes"),
        ({"kind": "down", "direction": "upstream"}, "direction"),
        ({"kind": "blackhole", "direction": "sideways"}, "direction"),
        ({"kind": "teleport"}, "kind"),
        ({"ms": 5}, "kind"),
    ],
)
def test_bad_toxic_is_422_naming_the_field(
    daemon: Daemon, make_link: MakeLink, echo_port: int, body: dict[str, Any], field: str
) -> None:
    name, _ = make_link(echo_port)
    with _http(daemon) as http:
        answer = http.post(f"/links/{name}/toxics", json=body)
    assert answer.status_code == 422
    assert answer.json()["field"] == field
    assert answer.json()["message"].startswith(f"{field}: ")


def test_bad_link_bodies_are_422_and_a_taken_name_409(daemon: Daemon, echo_port: int) -> None:
    good = {"name": "api-dup", "upstreams": [f"127.0.0.1:{echo_port}"]}
    bad = [
        ({"name": "x"}, "upstreams"),
        ({"name": "x", "upstreams": []}, "upstreams"),
        ({"name": "x", "upstreams": ["10.1.2.3:80"]}, "upstreams.0"),
        ({"name": "x", "upstreams": ["127.0.0.1:http"]}, "upstreams.0"),
        ({"name": "bad/name", "upstreams": ["127.0.0.1:1"]}, "name"),
        ({"name": "x", "upstreams": ["127.0.0.1:1"], "listen_port": 70000}, "listen_port"),
        ([1, 2], ""),
    ]
    with _http(daemon) as http:
        for body, field in bad:
            answer = http.post("/links", json=body)
            assert (answer.status_code, answer.json()["field"]) == (422, field), body
        answer = http.post("/links", content=b"{not json")
        assert (answer.status_code, answer.json()["error"]) == (422, "invalid")
        assert http.post("/links", json=good).status_code == 201
        try:
            answer = http.post("/links", json=good)
            assert (answer.status_code, answer.json()["error"]) == (409, "link_exists")
        finally:
            assert http.delete("/links/api-dup").status_code == 204


def test_token_is_required_on_every_request_but_the_scrape_and_health(daemon: Daemon) -> None:
    for token in (None, "wrong"):
        with _http(daemon, token) as http:
            for path in ("/links", "/links/none/toxics"):
                answer = http.get(path)
                assert (answer.status_code, answer.json()["error"]) == (401, "unauthorized")
            assert http.post("/links", json={}).status_code == 401
            assert http.get("/health").status_code == 200
            assert "gameday_proxy" in http.get("/metrics").text
    with ProxyClient(daemon.url) as anonymous, pytest.raises(ProxyError, match="Token"):
        anonymous.links()


def test_unknown_routes_and_methods_answer_json(daemon: Daemon) -> None:
    with _http(daemon) as http:
        assert http.get("/nowhere").json()["error"] == "not_found"
        answer = http.put("/links")
        assert (answer.status_code, answer.json()["error"]) == (405, "method_not_allowed")


def test_links_show_stats_toxics_and_metrics(
    daemon: Daemon, proxy: ProxyClient, make_link: MakeLink, echo_port: int
) -> None:
    name, port = make_link(echo_port)
    with connect(port) as sock:
        sock.sendall(b"12345")
        assert sock.recv(5) == b"12345"
    first = proxy.add_toxic(name, "latency", ms=5)
    proxy.add_toxic(name, "slow_close", ms=5)
    link = next(link for link in proxy.links() if link["name"] == name)
    assert link["listen"] == f"127.0.0.1:{port}"
    assert link["stats"]["connections_total"] == 1
    assert link["stats"]["bytes_upstream"] == link["stats"]["bytes_downstream"] == 5
    assert [t["kind"] for t in proxy.toxics(name)] == ["latency", "slow_close"]
    with _http(daemon) as http:
        metrics = http.get("/metrics").text
        assert http.get("/health").status_code == 200
    assert f'gameday_proxy_toxics_active{{kind="latency",link="{name}"}} 1.0' in metrics
    assert f'gameday_proxy_connections_total{{link="{name}"}} 1.0' in metrics
    assert f'gameday_proxy_bytes_total{{direction="upstream",link="{name}"}} 5.0' in metrics
    proxy.remove_toxic(name, first)
    proxy.remove_toxic(name, first)
    proxy.clear(name)
    assert proxy.link(name)["toxics"] == []
    proxy.remove_link(name)
    with pytest.raises(ProxyError, match="no link"):
        proxy.link(name)


def test_client_reports_an_unreachable_proxy() -> None:
    client = ProxyClient(f"http://127.0.0.1:{free_port()}", timeout=1)
    with client, pytest.raises(ProxyError, match="unreachable"):
        client.links()


def test_daemon_refuses_a_host_off_loopback() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gameday.faults.proxy", "--host", "0.0.0.0"],  # noqa: S104 - refused
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert "loopback" in done.stderr
    assert done.stdout == ""


def test_daemon_reads_its_token_from_the_environment_and_stops_on_sigterm(
    echo_port: int,
) -> None:
    daemon = start(env={"GAMEDAY_PROXY_TOKEN": "from-env"})
    try:
        with ProxyClient(daemon.url, token="from-env") as client:
            port = client.add_link("sig", [f"127.0.0.1:{echo_port}"])["listen_port"]
            with connect(port) as sock:
                sock.sendall(b"x")
                assert sock.recv(1) == b"x"
                started = time.monotonic()
                daemon.proc.send_signal(signal.SIGTERM)
                assert daemon.proc.wait(timeout=5) == 0
                assert time.monotonic() - started < 2.0
                with pytest.raises(ConnectionResetError):  # links close with RST
                    sock.recv(1)
    finally:
        daemon.stop()


def test_daemon_exits_when_its_parent_dies() -> None:
    parent = subprocess.Popen(["sleep", "60"])  # noqa: S607 - a stand-in parent process
    daemon = start("--parent-pid", str(parent.pid))
    try:
        time.sleep(0.2)
        assert daemon.proc.poll() is None
        parent.kill()
        parent.wait(timeout=5)
        assert daemon.proc.wait(timeout=5) == 0
    finally:
        parent.kill()
        parent.wait(timeout=5)
        daemon.stop()
