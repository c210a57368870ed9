"""Fixtures of the fault proxy tests: the daemon as a subprocess, as the stack runs it, and
small threaded TCP servers to put behind it (an echo, a greeter that speaks first, a sink).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import selectors
import signal
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO

import pytest

from gameday.faults.proxy import READY_PREFIX, ProxyClient

TOKEN = "proxy-test-token"
_names = itertools.count(1)


@dataclass(frozen=True)
class Daemon:
    """A proxy process; its stderr goes to a file, which no amount of logging can fill."""

    proc: subprocess.Popen[str]
    stderr: IO[str]
    url: str = ""

    def stop(self) -> tuple[int, str]:
        """Terminate (kill after 5 s): the exit code and what the daemon said on stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.stderr.seek(0)
        err = self.stderr.read()
        self.stderr.close()
        return self.proc.returncode, err


def launch(*args: str, env: dict[str, str] | None = None) -> Daemon:
    stderr = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed by Daemon.stop
    proc = subprocess.Popen(  # noqa: S603 - our interpreter and our own module
        [sys.executable, "-m", "gameday.faults.proxy", *args],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )
    return Daemon(proc, stderr)


def start(*args: str, env: dict[str, str] | None = None, timeout_s: float = 20.0) -> Daemon:
    """A daemon that has printed its ready line (or a failure with its stderr)."""
    daemon = launch(*args, env=env)
    assert daemon.proc.stdout is not None
    line = ""
    with selectors.DefaultSelector() as selector:
        selector.register(daemon.proc.stdout, selectors.EVENT_READ)
        if selector.select(timeout=timeout_s):
            line = daemon.proc.stdout.readline()
    if not line.startswith(READY_PREFIX):
        code, err = daemon.stop()
        pytest.fail(f"the proxy did not start (exit {code}): {line!r} {err[-2000:]}")
    return dataclasses.replace(daemon, url=line[len(READY_PREFIX) :].strip())


@pytest.fixture(scope="module")
def daemon() -> Iterator[Daemon]:
    running = start("--token", TOKEN)
    yield running
    code, err = running.stop()
    assert code == 0, err


@pytest.fixture
def proxy(daemon: Daemon) -> Iterator[ProxyClient]:
    """A control client; links it made are removed after the test."""
    with ProxyClient(daemon.url, token=TOKEN) as client:
        before = {link["name"] for link in client.links()}
        yield client
        for link in client.links():
            if link["name"] not in before:
                client.remove_link(link["name"])


@pytest.fixture
def make_link(proxy: ProxyClient) -> Callable[..., tuple[str, int]]:
    """``make_link(upstream_port, ...)`` -> (link name, port to connect to)."""

    def make(*ports: int) -> tuple[str, int]:
        name = f"test{next(_names)}"
        link = proxy.add_link(name, [f"127.0.0.1:{port}" for port in ports])
        return name, int(link["listen_port"])

    return make


class _Handler(socketserver.BaseRequestHandler):
    server: Server

    def handle(self) -> None:
        sock: socket.socket = self.request
        with contextlib.suppress(OSError):  # the proxy reset us: what several tests are about
            self.server.behaviour(sock)


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, behaviour: Callable[[socket.socket], None]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.behaviour = behaviour
        self.port: int = self.server_address[1]
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05})

    def __enter__(self) -> Server:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=5)


def echo(sock: socket.socket) -> None:
    while data := sock.recv(1 << 16):
        sock.sendall(data)


def greeter(greeting: bytes) -> Callable[[socket.socket], None]:
    def behaviour(sock: socket.socket) -> None:
        sock.sendall(greeting)
        echo(sock)

    return behaviour


def sink(sock: socket.socket) -> None:
    """Count bytes until EOF, then answer the count."""
    total = 0
    while data := sock.recv(1 << 18):
        total += len(data)
    sock.sendall(str(total).encode())


@pytest.fixture(scope="module")
def echo_port() -> Iterator[int]:
    with Server(echo) as server:
        yield server.port


@pytest.fixture(scope="module")
def greeter_port() -> Iterator[int]:
    with Server(greeter(b"hi\n")) as server:
        yield server.port


def connect(port: int, timeout: float = 5.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def round_trip(sock: socket.socket, payload: bytes = b"ping") -> float:
    """Seconds for ``payload`` to come back through an echo."""
    start = time.perf_counter()
    sock.sendall(payload)
    got = b""
    while len(got) < len(payload):
        chunk = sock.recv(1 << 16)
        assert chunk, "closed during a round trip"
        got += chunk
    assert got == payload
    return time.perf_counter() - start
