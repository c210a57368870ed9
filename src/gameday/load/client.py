"""The drill's HTTP client: HTTP/1.1 keep-alive over a bounded pool, loopback targets only.

Hand-written because no maintained asyncio client reaches the rate a drill needs from one
process: a lean Protocol-plus-``httptools`` client measured about 67k requests/s where
aiohttp gave 11k and httpx about 0.4k on the same machine. What it leaves out is what a drill
does not need: TLS, proxies, redirects, cookies, compression, pipelining, retries. Retries
above all: a retried payment is a second payment, so whether to try again is the scenario's
decision, made with an idempotency key, never the transport's.

It runs on whatever loop is running (uvloop when the caller chose it, see ``load.run``).
Errors tell the history what happened: ``ConnectError`` when the request was never written
(``fail``), ``ResponseLost`` when it was written and no complete answer came (``info``).
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections import deque
from collections.abc import Mapping
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import orjson

from gameday.load.connection import MAX_BODY, Connection, Response
from gameday.load.errors import (
    ConnectError,
    PoolTimeout,
    RequestError,
    ResponseLost,
    ResponseTimeout,
    TargetNotAllowed,
)

__all__ = [
    "MAX_BODY",
    "ConnectError",
    "HttpClient",
    "PoolTimeout",
    "RequestError",
    "Response",
    "ResponseLost",
    "ResponseTimeout",
    "TargetNotAllowed",
]

IDLE_REUSE_S = 4.0
"""An idle connection older than this is closed, not reused: servers drop idle keep-alive
connections (uvicorn after 5 s), and a request written as the server closes would be lost
with an unknown outcome that the target never caused."""

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_Waiter = asyncio.Future[Connection | None]


def loopback_address(base_url: str) -> tuple[str, int, str, str]:
    """``(connect host, port, Host header, path prefix)`` of an ``http://`` loopback URL."""
    parts = urlsplit(base_url)
    if parts.scheme != "http":
        raise ValueError(f"{base_url!r}: only http:// targets are supported")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError(f"{base_url!r}: no credentials, query or fragment in the base URL")
    host = parts.hostname or ""
    if host != "localhost":
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise TargetNotAllowed(
                f"{base_url!r}: load goes to loopback only (127.0.0.0/8, localhost, ::1)"
            )
    connect_host = "127.0.0.1" if host == "localhost" else host
    return connect_host, parts.port or 80, parts.netloc, parts.path.rstrip("/")


class HttpClient:
    """At most ``connections`` connections; requests beyond wait for one, within their timeout."""

    def __init__(
        self,
        base_url: str,
        *,
        connections: int = 32,
        timeout_s: float = 10.0,
        connect_timeout_s: float = 2.0,
    ) -> None:
        if connections < 1 or timeout_s <= 0 or connect_timeout_s <= 0:
            raise ValueError("connections must be >= 1 and timeouts > 0")
        self.base_url = base_url
        self.connections = connections
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self._host, self._port, netloc, self._prefix = loopback_address(base_url)
        self._fixed = f"Host: {netloc}\r\nUser-Agent: gameday-load\r\n"
        self._idle: list[Connection] = []
        self._waiters: deque[_Waiter] = deque()
        self._open = 0
        self._closed = False

    async def request(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        body: bytes | None = None,
        timeout_s: float | None = None,
    ) -> Response:
        """One request and its complete answer; ``timeout_s`` bounds the whole of it."""
        data = self._encode(method, path, headers, json, body)
        loop = asyncio.get_running_loop()
        now = loop.time()
        deadline = now + (self.timeout_s if timeout_s is None else timeout_s)
        conn = self._take_idle(now) or await self._acquire(loop, deadline)
        timer = loop.call_at(deadline, conn.time_out)
        try:
            return await conn.send(data, head=method == "HEAD")
        except RequestError as exc:
            exc.args = (f"{method} {path}: {exc}",)
            raise
        except BaseException:  # cancelled: the answer may still come, so the connection goes
            conn.lose(ResponseLost("cancelled"))
            raise
        finally:
            timer.cancel()
            self._release(conn, loop.time())

    async def warm(self, n: int) -> None:
        """Open connections until ``n`` are idle (within the pool's bound), all at once."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        fresh: list[Connection] = []
        for conn in self._idle:
            if conn.open and now - conn.idle_since < IDLE_REUSE_S:
                fresh.append(conn)
            else:
                self._discard(conn)
        self._idle = fresh
        count = max(0, min(n - len(fresh), self.connections - self._open))
        self._open += count
        deadline = now + self.connect_timeout_s
        tasks = [loop.create_task(self._connect(loop, deadline)) for _ in range(count)]
        try:
            if tasks:
                await asyncio.wait(tasks)
        finally:
            for task in tasks:
                if not task.done():
                    task.cancel()  # its _connect gives the slot back
                elif not task.cancelled() and task.exception() is None:
                    self._release(task.result(), loop.time())
        for task in tasks:
            error = None if task.cancelled() else task.exception()
            if error is not None:
                raise error

    async def close(self) -> None:
        self._closed = True
        for conn in self._idle:
            conn.close()
        self._open -= len(self._idle)
        self._idle.clear()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(ConnectError("the client is closed"))
        await asyncio.sleep(0)  # let the transports finish closing

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- the pool ------------------------------------------------------------------------------

    def _take_idle(self, now: float) -> Connection | None:
        idle = self._idle
        while idle:
            conn = idle.pop()  # the most recently used: warm and least likely to be closed
            if conn.open and now - conn.idle_since < IDLE_REUSE_S:
                return conn
            self._discard(conn)
        return None

    async def _acquire(self, loop: asyncio.AbstractEventLoop, deadline: float) -> Connection:
        if self._closed:
            raise ConnectError("the client is closed")
        if self._open < self.connections:
            self._open += 1
            return await self._connect(loop, deadline)
        waiter: _Waiter = loop.create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout_at(deadline):
                conn = await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                given = waiter.result()  # handed over as we were cancelled: give it back
                if given is None:
                    self._free_slot()
                else:
                    self._release(given, loop.time())
            if isinstance(exc, TimeoutError):
                raise PoolTimeout(f"all {self.connections} connections stayed busy") from None
            raise
        return conn if conn is not None else await self._connect(loop, deadline)

    async def _connect(self, loop: asyncio.AbstractEventLoop, deadline: float) -> Connection:
        """A new connection in a slot already counted in ``_open``; the slot is freed on error."""
        try:
            async with asyncio.timeout(min(self.connect_timeout_s, max(deadline - loop.time(), 0))):
                _, conn = await loop.create_connection(
                    lambda: Connection(loop), self._host, self._port
                )
        except BaseException as exc:
            self._free_slot()
            if isinstance(exc, OSError):  # TimeoutError included
                reason = str(exc) or "timed out"
                raise ConnectError(f"cannot connect to {self.base_url}: {reason}") from None
            raise
        return conn

    def _release(self, conn: Connection, now: float) -> None:
        if not conn.reusable or self._closed:
            self._discard(conn)
            return
        conn.idle_since = now
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self._idle.append(conn)

    def _discard(self, conn: Connection) -> None:
        if conn.open:
            conn.close()
        self._free_slot()

    def _free_slot(self) -> None:
        """A slot is free: hand it to the first live waiter (who connects), else count it."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._open -= 1

    def _encode(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str] | None,
        json: Any,
        body: bytes | None,
    ) -> bytes:
        if not path.startswith("/") or " " in path or "\r" in path or "\n" in path:
            raise ValueError(f"not a request path: {path!r}")
        parts = [f"{method} {self._prefix}{path} HTTP/1.1\r\n{self._fixed}"]
        if headers:
            for name, value in headers.items():
                if "\r" in name or "\n" in name or "\r" in value or "\n" in value:
                    raise ValueError(f"header {name!r}: line breaks are not allowed")
                parts.append(f"{name}: {value}\r\n")
        if json is not None:
            if body is not None:
                raise ValueError("give json or body, not both")
            body = orjson.dumps(json)
            if not headers or all(name.lower() != "content-type" for name in headers):
                parts.append("Content-Type: application/json\r\n")
        if body is not None:
            parts.append(f"Content-Length: {len(body)}\r\n\r\n")
            return "".join(parts).encode("latin-1") + body
        parts.append("Content-Length: 0\r\n\r\n" if method in _BODY_METHODS else "\r\n")
        return "".join(parts).encode("latin-1")
