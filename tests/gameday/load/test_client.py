"""The HTTP client against a real server on loopback that misbehaves on request.

``ScriptedServer`` (also used by the driver tests) speaks HTTP/1.1 by hand on its own thread
and event loop, so that it can do what well-behaved frameworks never do: close in the middle
of an answer, answer with no length, hold every request until N of them are in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from types import TracebackType

import orjson
import pytest

import gameday.load
from gameday.load import (
    ConnectError,
    HttpClient,
    PoolTimeout,
    ResponseLost,
    ResponseTimeout,
    TargetNotAllowed,
    errors,
)

ERRORS = {409: "slot_taken", 503: "overloaded"}


class ScriptedServer:
    """Answers by path: ``/ok``, ``/status/CODE``, ``/delay/MS``, ``/barrier/N``, ``/echo``,
    ``/chunked``, ``/connection-close``, ``/eof-body``, ``/close-mid``, ``/big``. Counts
    connections, requests, and per path the requests in flight and the most at once."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests = 0
        self.in_flight: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self.arrivals: dict[str, list[float]] = defaultdict(list)
        self._ids = itertools.count(1)
        self._barrier_waiting = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._barrier = asyncio.Event()
        self._ready.set()
        self._loop.run_forever()
        server.close()
        tasks = asyncio.all_tasks(self._loop)
        for task in tasks:
            task.cancel()
        self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        self._loop.run_until_complete(server.wait_closed())
        self._loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            keep = True
            while keep:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
                method, path, _ = head[0].split(" ")
                headers = dict(line.split(": ", 1) for line in head[1:] if line)
                headers = {name.lower(): value for name, value in headers.items()}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.requests += 1
                self.arrivals[path].append(time.monotonic())
                self.in_flight[path] += 1
                self.peak[path] = max(self.peak[path], self.in_flight[path])
                try:
                    if method == "HEAD":  # a length, and no body to go with it
                        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n")
                        continue
                    keep = await self._answer(path, headers, body, writer)
                finally:
                    self.in_flight[path] -= 1
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _answer(
        self, path: str, headers: dict[str, str], body: bytes, writer: asyncio.StreamWriter
    ) -> bool:
        _, route, *args = path.split("/")
        arg = int(args[0]) if args else 0
        if route == "delay":
            await asyncio.sleep(arg / 1000)
        elif route == "barrier":
            self._barrier_waiting += 1
            if self._barrier_waiting >= arg:
                self._barrier.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._barrier.wait(), 5)
            return self._send(writer, 200, {"in_flight": self.in_flight[path]})
        elif route == "status":
            return self._send(writer, arg, {"error": ERRORS.get(arg, "other")})
        elif route == "echo":
            seen = {"type": headers.get("content-type", ""), "body": body.decode()}
            seen["key"] = headers.get("idempotency-key", "")
            return self._send(writer, 200, seen)
        elif route in ("chunked", "eof-body", "close-mid", "big", "connection-close"):
            return await self._odd(route, writer)
        return self._send(writer, 200, {"ok": True})

    def _send(self, writer: asyncio.StreamWriter, status: int, data: object) -> bool:
        body = orjson.dumps(data)
        writer.write(
            f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: "
            f"{len(body)}\r\nX-Request-ID: req-{next(self._ids)}\r\n\r\n".encode()
            + body
        )
        return True

    async def _odd(self, route: str, writer: asyncio.StreamWriter) -> bool:
        if route == "chunked":
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for part in (b"one,", b"two,", b"three"):
                writer.write(b"%x\r\n%s\r\n" % (len(part), part))
                await writer.drain()
                await asyncio.sleep(0.01)
            writer.write(b"0\r\n\r\n")
            return True
        if route == "connection-close":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nbye")
        elif route == "eof-body":
            writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end")
        elif route == "close-mid":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        elif route == "big":
            size = gameday.load.client.MAX_BODY + 1
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
            writer.write(b"x" * size)
        await writer.drain()
        return False


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedServer]:
    with ScriptedServer() as running:
        yield running


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_answers_are_parsed_and_connections_kept_alive(server: ScriptedServer) -> None:
    async def main() -> None:
        async with HttpClient(server.url, connections=4) as client:
            before = server.connections
            for _ in range(10):
                response = await client.request("GET", "/ok")
                assert response.status == 200
                assert response.json() == {"ok": True}
                assert response.headers["x-request-id"].startswith("req-")
            assert server.connections == before + 1  # one connection, reused

            echo = await client.request("POST", "/echo", json={"slot": 7})
            assert echo.json() == {"type": "application/json", "body": '{"slot":7}', "key": ""}
            raw = await client.request("PUT", "/echo", body=b"raw", headers={"Content-Type": "t/x"})
            assert raw.json()["type"] == "t/x"
            assert raw.json()["body"] == "raw"

            head = await client.request("HEAD", "/ok")
            assert (head.status, head.headers["content-length"], head.body) == (200, "11", b"")
            assert (await client.request("GET", "/chunked")).body == b"one,two,three"
            assert (await client.request("GET", "/eof-body")).body == b"until the end"
            await client.request("GET", "/ok")
            conns = server.connections
            assert (await client.request("GET", "/connection-close")).body == b"bye"
            await client.request("GET", "/ok")  # the closed connection was not reused
            assert server.connections == conns + 1

    asyncio.run(main())


def test_failures_say_whether_the_request_was_sent(server: ScriptedServer) -> None:
    async def main() -> None:
        async with HttpClient(f"http://127.0.0.1:{closed_port()}") as nowhere:
            with pytest.raises(ConnectError, match="cannot connect"):
                await nowhere.request("GET", "/ok")
        async with HttpClient(server.url, timeout_s=0.2) as client:
            started = time.monotonic()
            with pytest.raises(ResponseTimeout, match="GET /delay/3000"):
                await client.request("GET", "/delay/3000")
            assert time.monotonic() - started < 1.0
            with pytest.raises(ResponseLost, match="before a complete answer"):
                await client.request("GET", "/close-mid")
            with pytest.raises(ResponseLost, match="body over"):
                await client.request("GET", "/big", timeout_s=5)
            assert (await client.request("GET", "/ok")).status == 200  # on a fresh connection

    asyncio.run(main())


def test_the_pool_is_bounded_and_waiting_is_bounded_in_time(server: ScriptedServer) -> None:
    async def main() -> None:
        async with HttpClient(server.url, connections=2) as client:
            answers = await asyncio.gather(*(client.request("GET", "/delay/51") for _ in range(8)))
            assert [a.status for a in answers] == [200] * 8
            assert server.peak["/delay/51"] == 2
        async with HttpClient(server.url, connections=1, timeout_s=0.2) as client:
            slow = asyncio.create_task(client.request("GET", "/delay/500", timeout_s=2))
            await asyncio.sleep(0.05)
            with pytest.raises(PoolTimeout):  # never sent: a ConnectError
                await client.request("GET", "/ok")
            assert (await slow).status == 200
            assert (await client.request("GET", "/ok")).status == 200

    asyncio.run(main())


def test_cancelling_a_request_discards_its_connection(server: ScriptedServer) -> None:
    async def main() -> None:
        async with HttpClient(server.url, connections=1) as client:
            await client.warm(1)
            await asyncio.sleep(0.05)  # the server thread counts the connection
            conns = server.connections
            task = asyncio.create_task(client.request("GET", "/delay/300"))
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert (await client.request("GET", "/ok")).status == 200
            assert server.connections == conns + 1

    gameday.load.run(main())  # on uvloop


def test_warm_opens_idle_connections_up_to_the_bound(server: ScriptedServer) -> None:
    async def main() -> None:
        async with HttpClient(server.url, connections=5) as client:
            before = server.connections
            await client.warm(8)
            await asyncio.sleep(0.05)
            assert server.connections == before + 5
            await client.warm(3)  # already enough idle ones
            await asyncio.sleep(0.05)
            assert server.connections == before + 5

    asyncio.run(main())


@pytest.mark.parametrize(
    "url", ["http://10.0.0.1", "http://example.com:80", "http://[::2]:8080", "http://0.0.0.0:1"]
)
def test_only_loopback_targets(url: str) -> None:
    with pytest.raises(TargetNotAllowed):
        HttpClient(url)


def test_loopback_forms_and_bad_urls() -> None:
    for url in ("http://localhost:8000", "http://127.0.0.2", "http://[::1]:9/api"):
        HttpClient(url)
    for url in ("https://127.0.0.1", "http://user:pw@127.0.0.1", "http://127.0.0.1/?q=1"):
        with pytest.raises(ValueError, match=r"base URL|only http"):
            HttpClient(url)


def test_the_public_api_is_complete() -> None:
    exported = set(gameday.load.__all__)
    assert all(hasattr(gameday.load, name) for name in exported)
    exceptions = {
        name
        for name, obj in vars(errors).items()
        if isinstance(obj, type)
        and issubclass(obj, Exception)
        and obj.__module__ == errors.__name__
    }
    assert exceptions <= exported
    assert {"Call", "Driver", "HttpClient", "Response", "Window", "run"} <= exported
