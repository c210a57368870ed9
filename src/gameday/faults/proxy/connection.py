"""One proxied TCP connection: two protocol ends (:class:`Side`) and, between them, one
:class:`Pipe` per direction.

The fast path is ``Side.data_received`` with ``fast`` set: the chunk goes straight to the
other transport, and back-pressure is the transports' own (a full writer pauses reading on
the other side). ``fast`` is cleared while the link has any toxic, while a pipe still holds
delayed bytes and until both ends are connected; then chunks take the pipe, which asks the
toxics what to do and keeps delayed chunks in order in a bounded queue with one timer.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
import struct
from typing import TYPE_CHECKING, cast

from gameday.faults.proxy.pipe import HOLD_SINK, Pipe

if TYPE_CHECKING:
    from gameday.faults.proxy.link import Link

WRITE_HIGH = 1024 * 1024  # a transport's own buffer: large enough for bulk, still bounded
WRITE_LIMIT_LOW = 256 * 1024
_LINGER_RST = struct.pack("ii", 1, 0)


def reset_transport(transport: asyncio.BaseTransport) -> None:
    """Close with RST instead of FIN: SO_LINGER 0 makes the kernel drop the connection."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):  # already gone: abort below is all there is to do
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
    cast(asyncio.Transport, transport).abort()


class Side(asyncio.Protocol):
    """One TCP end held by the proxy: the source of ``out`` and the sink of ``into``."""

    out: Pipe
    into: Pipe

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.transport: asyncio.Transport | None = None
        self.alive = False
        self.fast = False
        self.nbytes = 0  # bytes read from this end
        self.forward = _discard  # the other end's transport.write, once both are connected

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = tcp = cast(asyncio.Transport, transport)
        self.alive = True
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):  # a peer that reset at once
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        tcp.set_write_buffer_limits(WRITE_HIGH, WRITE_LIMIT_LOW)
        self.conn.side_made(self, tcp)

    def data_received(self, data: bytes) -> None:
        self.nbytes += len(data)
        if self.fast:
            self.forward(data)
        else:
            self.out.push(data)

    def eof_received(self) -> bool:
        self.out.finish("eof")
        return True  # keep the other direction open until its own close arrives

    def connection_lost(self, exc: Exception | None) -> None:
        self.conn.side_lost(self)

    def pause_writing(self) -> None:
        self.into.hold(HOLD_SINK, True)

    def resume_writing(self) -> None:
        self.into.hold(HOLD_SINK, False)


def _discard(data: bytes) -> None:
    return None


class Connection:
    """A client connection and, once admitted and connected, its upstream connection."""

    def __init__(self, link: Link) -> None:
        self.link = link
        self.loop = asyncio.get_running_loop()
        self.client, self.server = Side(self), Side(self)
        self.up = Pipe(self, "upstream", self.client, self.server)
        self.down = Pipe(self, "downstream", self.server, self.client)
        self.client.out = self.server.into = self.up
        self.server.out = self.client.into = self.down
        self.open = False  # both ends connected
        self.held = False  # accepted during a blackhole: never connected upstream
        self.closing = False
        self.done = False
        self.seen = 0  # bytes through the slow path, both directions (reset_peer counts them)
        self.byte_limit: float = math.inf
        self.limits: dict[str, int] = {}
        self.timers: dict[str, asyncio.TimerHandle] = {}

    def side_made(self, side: Side, transport: asyncio.Transport) -> None:
        if self.closing:
            transport.close()
        elif side is self.client:
            self.link.accepted(self)
        elif self.client.transport is not None:
            self.open = True
            self.client.forward = transport.write
            self.server.forward = self.client.transport.write
            self.up.flush()  # what the client sent while we connected; then refresh()

    def hold_open(self) -> None:
        """Accept and never answer: read the client and throw its bytes away."""
        self.held = True

    def refresh(self) -> None:
        """Back on the fast path where nothing is left to do but forward."""
        plain = self.open and not self.link.toxics and not self.closing
        self.client.fast = plain and not self.up.busy()
        self.server.fast = plain and not self.down.busy()

    def toxic_added(self) -> None:
        self.client.fast = self.server.fast = False

    def toxic_removed(self, toxic_id: str) -> None:
        self.forget(toxic_id)
        for pipe in (self.up, self.down):
            pipe.marks.pop(toxic_id, None)
            pipe.release_all()
        self.refresh()

    def reset_later(self, key: str, after_s: float | None, after_bytes: int | None) -> None:
        if after_s is not None:
            self.timers[key] = self.loop.call_later(after_s, self.reset)
        if after_bytes is not None:
            self.limits[key] = self.seen + after_bytes
            self.byte_limit = min(self.limits.values())

    def forget(self, key: str) -> None:
        timer = self.timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        if self.limits.pop(key, None) is not None:
            self.byte_limit = min(self.limits.values(), default=math.inf)

    def close_delay(self) -> float:
        return max((t.toxic.close_delay() for t in self.link.toxics), default=0.0)

    @property
    def connecting(self) -> bool:
        return not (self.open or self.held or self.closing)

    def half_closed(self) -> None:
        if self.up.ended and self.down.ended:
            self.close()

    def close(self) -> None:
        """FIN both ends, after what their transports still buffer (not the pipes' queues:
        by the time a connection is closed whole, nothing queued has anywhere to go)."""
        self.closing = True
        self.up.abandon()
        self.down.abandon()
        for side in (self.client, self.server):
            if side.alive and side.transport is not None:
                side.transport.close()
        self._finish_if_gone()

    def reset(self) -> None:
        """RST both ends at once; whatever is queued is lost, as with a real reset."""
        self.closing = True
        self.up.abandon()
        self.down.abandon()
        for side in (self.client, self.server):
            if side.alive and side.transport is not None:
                reset_transport(side.transport)
        self._finish_if_gone()

    def side_lost(self, side: Side) -> None:
        side.alive = False
        self.client.fast = self.server.fast = False  # nothing may be written to a dead end
        side.into.abandon()
        other = self.server if side is self.client else self.client
        if not other.alive:
            self.closing = True  # a connect still under way finds nobody to connect for
        elif not self.closing:
            side.out.finish("close")
        self._finish_if_gone()

    def _finish_if_gone(self) -> None:
        if self.done or self.client.alive or self.server.alive:
            return
        self.done = True
        for timer in self.timers.values():
            timer.cancel()
        self.timers.clear()
        self.up.abandon()
        self.down.abandon()
        self.link.connection_closed(self)
