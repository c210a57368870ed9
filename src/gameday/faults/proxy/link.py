"""A link: one listening socket on loopback, forwarding each accepted connection to one of
its upstreams, round robin, skipping an upstream that refuses.

The link owns its toxics. Adding or removing one reaches the open connections at once and
every connection accepted afterwards reads the current tuple, so a fault applies from the
moment it is added. ``down`` is the one toxic acting on the link itself: the listening
socket is closed (new connections are refused) and bound again on the same port on heal.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from dataclasses import dataclass
from typing import Any

from gameday.faults.proxy.connection import Connection, Side
from gameday.faults.proxy.errors import Conflict, NotFound
from gameday.faults.proxy.toxics import SEVERITY, ActiveToxic, Admission

CONNECT_TIMEOUT_S = 5.0
BACKLOG = 1024


def host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True, slots=True)
class Upstream:
    host: str
    port: int

    def __str__(self) -> str:
        return host_port(self.host, self.port)


class Link:
    def __init__(self, name: str, host: str, port: int, upstreams: tuple[Upstream, ...]) -> None:
        self.name, self.host, self.port, self.upstreams = name, host, port, upstreams
        self.toxics: tuple[ActiveToxic, ...] = ()
        self.connections: set[Connection] = set()
        self.server: asyncio.AbstractServer | None = None
        self.closed = False
        self.total = self.failures = self.closed_up = self.closed_down = 0
        self._next = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def listen(self) -> None:
        """Bind (again) on ``port``; SO_REUSEADDR lets a healed link have its port back."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            sock.listen(BACKLOG)
            sock.setblocking(False)
            port = sock.getsockname()[1]
            loop = asyncio.get_running_loop()
            self.server = await loop.create_server(self._protocol, sock=sock, backlog=BACKLOG)
        except OSError as exc:
            sock.close()
            where = host_port(self.host, self.port)
            message = f"cannot listen on {where}: {exc.strerror}"
            raise Conflict(message, code="port_unavailable") from None
        self.port = port

    def _protocol(self) -> Side:
        return Connection(self).client

    def accepted(self, conn: Connection) -> None:
        """A new client: the toxics decide whether it is forwarded, held, closed or reset."""
        self.connections.add(conn)
        self.total += 1
        toxics = self.toxics
        verdicts: list[Admission] = [active.toxic.admit(active) for active in toxics]
        verdict = max(verdicts, key=SEVERITY.__getitem__, default="forward")
        if verdict == "reset":
            conn.reset()
        elif verdict == "close":
            conn.close()
        else:
            for active in toxics:
                active.toxic.attach(active, conn)
            if verdict == "hold":
                conn.hold_open()
            else:
                task = asyncio.get_running_loop().create_task(self._connect(conn))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _connect(self, conn: Connection) -> None:
        """Round robin from the next upstream; each is tried at most once."""
        loop = asyncio.get_running_loop()
        count = len(self.upstreams)
        first, self._next = self._next, (self._next + 1) % count
        for i in range(count):
            if conn.closing:
                return
            upstream = self.upstreams[(first + i) % count]
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT_S):
                    await loop.create_connection(lambda: conn.server, upstream.host, upstream.port)
            except (OSError, TimeoutError):
                self.failures += 1
                continue
            return
        conn.close()

    def connection_closed(self, conn: Connection) -> None:
        self.connections.discard(conn)
        self.closed_up += conn.client.nbytes
        self.closed_down += conn.server.nbytes

    async def add_toxic(self, active: ActiveToxic) -> None:
        self.toxics = (*self.toxics, active)
        for conn in list(self.connections):
            conn.toxic_added()
            if not conn.closing:
                active.toxic.attach(active, conn)
        await self._sync_listening()

    async def remove_toxics(self, toxic_ids: list[str]) -> None:
        unknown = [t for t in toxic_ids if t not in {active.id for active in self.toxics}]
        if unknown:
            message = f"link {self.name!r} has no toxic {unknown[0]!r}"
            raise NotFound(message, code="toxic_not_found")
        self.toxics = tuple(active for active in self.toxics if active.id not in toxic_ids)
        for conn in list(self.connections):
            for toxic_id in toxic_ids:
                conn.toxic_removed(toxic_id)
        await self._sync_listening()

    async def _sync_listening(self) -> None:
        down = any(active.toxic.takes_link_down for active in self.toxics)
        if down and self.server is not None:
            await self._stop_listening()
        elif not down and self.server is None and not self.closed:
            await self.listen()

    async def _stop_listening(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            server.close()
        for conn in list(self.connections):
            conn.reset()
        if server is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await server.wait_closed()

    async def close(self) -> None:
        """Stop listening and reset every connection (the path to the dependency is gone)."""
        self.closed = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._stop_listening()

    def stats(self) -> dict[str, int]:
        return {
            "connections_open": len(self.connections),
            "connections_total": self.total,
            "bytes_upstream": self.closed_up + sum(c.client.nbytes for c in self.connections),
            "bytes_downstream": self.closed_down + sum(c.server.nbytes for c in self.connections),
            "toxics_active": len(self.toxics),
            "upstream_failures": self.failures,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "listen": host_port(self.host, self.port),
            "listen_port": self.port,
            "upstreams": [str(upstream) for upstream in self.upstreams],
            "listening": self.server is not None,
            "stats": self.stats(),
            "toxics": [active.to_json() for active in self.toxics],
        }
