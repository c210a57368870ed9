"""One direction of a proxied connection on the slow path (see :mod:`.connection`).

A chunk asks the link's toxics what to do with it: throw it away, or wait. Waiting chunks
queue in arrival order with their release time (max(now + delay, previous release)), so
nothing overtakes; one timer per pipe, set for the head of the queue, releases everything
due at once. The queue is bounded: above ``QUEUE_HIGH`` bytes the source stops being read
until the queue is down to ``QUEUE_LOW``.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import TYPE_CHECKING, Literal

from gameday.faults.proxy.toxics import Flow

if TYPE_CHECKING:
    from gameday.faults.proxy.connection import Connection, Side

QUEUE_HIGH = 4 * 1024 * 1024  # delayed bytes in one direction before its source is paused
QUEUE_LOW = 1024 * 1024
HOLD_SINK, HOLD_QUEUE = 1, 2  # why a pipe's source is not being read


class Pipe:
    """One direction of a connection on the slow path: delays, discards, ordered release."""

    def __init__(self, conn: Connection, flow: Flow, source: Side, sink: Side) -> None:
        self.conn, self.flow, self.source, self.sink = conn, flow, source, sink
        self.queue: deque[tuple[float, bytes]] = deque()
        self.queued = 0
        self.last = 0.0  # release time of the newest queued chunk: nothing overtakes it
        self.timer: asyncio.TimerHandle | None = None
        self.marks: dict[str, float] = {}  # per-toxic clocks (bandwidth)
        self.ending: Literal["", "eof", "close"] = ""
        self.ended = False  # the close has been passed on
        self.end_timer: asyncio.TimerHandle | None = None
        self.holds = 0
        self.paused = False

    def busy(self) -> bool:
        return bool(self.queue) or bool(self.ending)

    def push(self, data: bytes) -> None:
        conn = self.conn
        conn.seen += len(data)
        if conn.seen >= conn.byte_limit:
            conn.reset()
            return
        if self.ending:
            return
        if not self.sink.alive:
            if conn.connecting:
                self._keep(0.0, data)  # the client spoke before the upstream answered
            return  # otherwise held, or the sink is gone: nothing can reach it
        now = time.monotonic()
        delay = 0.0
        for active in conn.link.toxics:
            if active.applies(self.flow):
                if active.toxic.discards:
                    return
                delay += active.toxic.delay(active, self.marks, len(data), now)
        if delay <= 0 and not self.queue:
            self._send([data])
            return
        self.last = max(now + delay, self.last)
        self._keep(self.last, data)
        if self.timer is None:
            self.timer = conn.loop.call_later(self.queue[0][0] - now, self.flush)

    def _keep(self, release: float, data: bytes) -> None:
        self.queue.append((release, data))
        self.queued += len(data)
        if self.queued > QUEUE_HIGH:
            self.hold(HOLD_QUEUE, True)

    def flush(self) -> None:
        """Deliver what is due (all of it when the upstream has just connected)."""
        self.timer = None
        now = time.monotonic()
        chunks: list[bytes] = []
        while self.queue and self.queue[0][0] <= now:
            chunks.append(self.queue.popleft()[1])
        self._write(chunks)
        if self.queue:
            self.timer = self.conn.loop.call_later(self.queue[0][0] - now, self.flush)
        else:
            self._drained()

    def _write(self, chunks: list[bytes]) -> None:
        if chunks:
            self.queued -= sum(map(len, chunks))
            self._send(chunks)
        if self.holds & HOLD_QUEUE and self.queued <= QUEUE_LOW:
            self.hold(HOLD_QUEUE, False)

    def _send(self, chunks: list[bytes]) -> None:
        transport = self.sink.transport
        if self.sink.alive and transport is not None and not transport.is_closing():
            transport.writelines(chunks)

    def _drained(self) -> None:
        if self.ending:
            self._end_soon()
        else:
            self.conn.refresh()

    def release_all(self) -> None:
        """A toxic was removed: what it held is delivered now, in order, not dropped."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        chunks = [data for _, data in self.queue]
        self.queue.clear()
        self.last = 0.0
        self._write(chunks)
        if chunks or self.end_timer is not None:
            self._drained()  # and a close held by slow_close goes with the new delay

    def finish(self, kind: Literal["eof", "close"]) -> None:
        """The source closed (``eof``: half, ``close``: whole): pass it on once drained."""
        if self.ending in ("close", kind):
            return
        self.ending = kind
        self.source.fast = False
        if not self.queue:
            self._end_soon()

    def _end_soon(self) -> None:
        if self.end_timer is not None:
            self.end_timer.cancel()
        delay = self.conn.close_delay()
        if delay > 0:
            self.end_timer = self.conn.loop.call_later(delay, self._end)
        else:
            self._end()

    def _end(self) -> None:
        self.end_timer = None
        transport = self.sink.transport
        if not self.sink.alive or transport is None:
            if not self.conn.connecting:
                self.conn.close()  # e.g. a held connection's client hung up: nobody to tell
            return  # else passed on once the upstream has connected (flush, then here)
        if transport.is_closing():
            return
        self.ended = True
        if self.ending == "close" or not transport.can_write_eof():
            transport.close()
        else:
            transport.write_eof()
            self.conn.half_closed()

    def hold(self, reason: int, on: bool) -> None:
        """Pause or resume reading the source; it reads only when no reason is left."""
        self.holds = self.holds | reason if on else self.holds & ~reason
        want = bool(self.holds)
        transport = self.source.transport
        if want == self.paused or transport is None or transport.is_closing():
            return
        self.paused = want
        if want:
            transport.pause_reading()
        else:
            transport.resume_reading()

    def abandon(self) -> None:
        """The sink is gone: nothing queued for it can be delivered."""
        for timer in (self.timer, self.end_timer):
            if timer is not None:
                timer.cancel()
        self.timer = self.end_timer = None
        self.queue.clear()
        self.queued = 0
