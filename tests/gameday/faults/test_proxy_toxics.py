"""Each fault seen from raw sockets against small servers behind a real proxy process.

Timing assertions have strict lower bounds (the proxy must never deliver early) and
generous upper bounds (the machine is shared and noisy).
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from collections.abc import Callable

import pytest

from gameday.faults.proxy import ProxyClient
from gameday.stack.processes import free_port
from tests.gameday.faults.conftest import Server, connect, greeter, round_trip

MakeLink = Callable[..., tuple[str, int]]


def _outcome(port: int) -> str:
    """How a new connection through a loss toxic fares: greeted, dropped (FIN) or reset."""
    try:
        with connect(port) as sock:  # a reset may beat connect() to its own result
            data = sock.recv(16)
    except ConnectionResetError:
        return "reset"
    return "greeted" if data == b"hi\n" else "dropped"


def _sequence(proxy: ProxyClient, name: str, port: int, mode: str, count: int) -> list[str]:
    toxic = proxy.add_toxic(name, "loss", fraction=0.2, mode=mode, seed=7)
    try:
        return [_outcome(port) for _ in range(count)]
    finally:
        proxy.remove_toxic(name, toxic)


@pytest.mark.parametrize(("mode", "failure"), [("drop", "dropped"), ("reset", "reset")])
def test_loss_of_connections_is_near_the_fraction_and_repeats_with_its_seed(
    proxy: ProxyClient, make_link: MakeLink, greeter_port: int, mode: str, failure: str
) -> None:
    name, port = make_link(greeter_port)
    first = _sequence(proxy, name, port, mode, 400)
    assert set(first) <= {"greeted", failure}
    assert abs(first.count(failure) / 400 - 0.2) <= 0.06
    assert _sequence(proxy, name, port, mode, 400) == first
    assert _outcome(port) == "greeted"  # healed


def test_stall_holds_about_the_fraction_of_chunks_in_order(
    proxy: ProxyClient, make_link: MakeLink, echo_port: int
) -> None:
    name, port = make_link(echo_port)
    with connect(port) as sock:
        round_trip(sock)
        proxy.add_toxic(name, "loss", fraction=0.3, mode="stall", stall_ms=60, seed=3,
                        direction="upstream")  # fmt: skip
        times = [round_trip(sock, f"n{i}".encode()) for i in range(100)]
    stalled = [t for t in times if t >= 0.060]
    assert abs(len(stalled) / 100 - 0.3) <= 0.12
    assert max(times) < 0.060 + 1.0


def test_removing_a_toxic_delivers_what_it_held(
    proxy: ProxyClient, make_link: MakeLink, echo_port: int
) -> None:
    name, port = make_link(echo_port)
    with connect(port) as sock:
        toxic = proxy.add_toxic(name, "latency", ms=2000)
        start = time.perf_counter()
        sock.sendall(b"held")
        time.sleep(0.1)
        proxy.remove_toxic(name, toxic)
        assert sock.recv(16) == b"held"
        assert time.perf_counter() - start < 1.5
        assert round_trip(sock) < 0.5


def test_latency_with_jitter_keeps_a_large_stream_whole_and_in_order(
    proxy: ProxyClient, make_link: MakeLink, echo_port: int
) -> None:
    """16 MiB through an echo under 100 +- 50 ms: the delayed bytes outgrow the pipe's
    bound (4 MiB), so reading pauses and resumes on the way."""
    name, port = make_link(echo_port)
    payload = os.urandom(16 << 20)
    proxy.add_toxic(name, "latency", ms=100, jitter_ms=50)
    with connect(port, timeout=30) as sock:
        sender = threading.Thread(target=sock.sendall, args=(payload,))
        sender.start()
        digest, received = hashlib.sha256(), 0
        while received < len(payload):
            chunk = sock.recv(1 << 20)
            assert chunk
            digest.update(chunk)
            received += len(chunk)
        sender.join(timeout=30)
    assert digest.digest() == hashlib.sha256(payload).digest()


def test_reset_peer_after_bytes_and_after_ms(
    proxy: ProxyClient, make_link: MakeLink, echo_port: int
) -> None:
    name, port = make_link(echo_port)
    with connect(port) as old:
        round_trip(old, b"x" * 1000)  # counted before injection: does not count
        toxic = proxy.add_toxic(name, "reset_peer", after_bytes=4000)
        round_trip(old, b"x" * 1000)  # 2000 bytes both ways
        with pytest.raises(ConnectionResetError):
            round_trip(old, b"x" * 3000)
    with connect(port) as new, pytest.raises(ConnectionResetError):
        round_trip(new, b"y" * 5000)
    proxy.remove_toxic(name, toxic)
    proxy.add_toxic(name, "reset_peer", after_ms=200)
    start = time.perf_counter()  # the proxy counts from its accept, within connect()
    with connect(port) as sock:
        round_trip(sock)
        with pytest.raises(ConnectionResetError):
            sock.recv(16)
        # uvloop's timers have millisecond resolution: allow one early millisecond.
        assert 0.199 <= time.perf_counter() - start < 2.0


def _seconds_to_see_close(port: int) -> float:
    """Half-close towards an echo, which then closes: the time until we see its close."""
    with connect(port) as sock:
        round_trip(sock)
        start = time.perf_counter()
        sock.shutdown(socket.SHUT_WR)
        assert sock.recv(16) == b""
        return time.perf_counter() - start


def test_slow_close_delays_each_close_it_passes_on(
    proxy: ProxyClient, make_link: MakeLink, echo_port: int
) -> None:
    name, port = make_link(echo_port)
    assert _seconds_to_see_close(port) < 0.3
    proxy.add_toxic(name, "slow_close", ms=300)
    assert 0.6 <= _seconds_to_see_close(port) < 0.6 + 1.5  # ours to the echo, then its own


def test_round_robin_over_upstreams_skips_the_dead_one(
    proxy: ProxyClient, make_link: MakeLink
) -> None:
    with Server(greeter(b"a")) as a, Server(greeter(b"b")) as b:
        _, both = make_link(a.port, b.port)
        greetings = []
        for _ in range(6):
            with connect(both) as sock:
                greetings.append(sock.recv(1))
        assert sorted(greetings) == [b"a"] * 3 + [b"b"] * 3
        assert greetings[0] != greetings[1]
        name, one_dead = make_link(a.port, free_port())
        for _ in range(4):
            with connect(one_dead) as sock:
                assert sock.recv(1) == b"a"
        assert proxy.link(name)["stats"]["upstream_failures"] >= 1
    _, all_dead = make_link(free_port(), free_port())
    with connect(all_dead) as sock:
        assert sock.recv(1) == b""


def test_blackhole_downstream_forwards_requests_but_swallows_answers(
    proxy: ProxyClient, make_link: MakeLink
) -> None:
    received: list[bytes] = []

    def record(sock: socket.socket) -> None:
        while data := sock.recv(1024):
            received.append(data)
            sock.sendall(data)

    with Server(record) as server:
        name, port = make_link(server.port)
        proxy.add_toxic(name, "blackhole", direction="downstream")
        with connect(port, timeout=0.3) as sock:
            sock.sendall(b"hello")
            with pytest.raises(TimeoutError):
                sock.recv(16)
        assert received == [b"hello"]
