"""The harness's pager: an Alertmanager webhook receiver that records when each alert arrived.

Time to detect is measured where a human would be paged — after Prometheus evaluated the
rule and Alertmanager routed it — so the drill tests the whole alerting pipeline, not just
the rule. The standard library's ``ThreadingHTTPServer`` serves it, as it does the Stripe
webhook receiver: Alertmanager sends a handful of requests a second at most, and a plain
thread needs no event loop beside the harness's own. Arrival times come from
``aligned_now``: wall-clock datetimes that advance with the monotonic clock, so differences
between them are immune to NTP steps yet still read as times in a report.

Everything is bounded: the request size, concurrent requests, the events kept in memory and
the set of alerts tracked as firing. ``events_file`` gets one JSON line per event, so another
process (``gameday stack status``) can follow the alerts with ``read_events``. The port is
chosen at construction, so ``url`` can go into Alertmanager's config before ``start``.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType

import orjson
import structlog

from gameday.alerts.events import AlertEvent, PayloadError, Status, aligned_now, parse_payload
from gameday.stack.processes import StartError, free_port

log = structlog.get_logger(__name__)

MAX_BODY = 1 << 20
MAX_EVENTS = 10_000
MAX_ACTIVE = 10_000
_MAX_CONCURRENT = 16
_MAX_DRAIN = 8 << 20
"""An oversized body is read and dropped up to this much, so the sender sees the 413
instead of a reset connection; beyond it the connection is simply closed."""


class AlertReceiver:
    """Accepts Alertmanager webhook (version 4) POSTs at ``/alerts`` on 127.0.0.1."""

    def __init__(self, *, port: int = 0, events_file: Path | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/alerts"
        self.events_file = events_file
        self._events: deque[AlertEvent] = deque(maxlen=MAX_EVENTS)
        self._active: dict[tuple[tuple[str, str], ...], str] = {}
        self._changed = threading.Condition()
        self._slots = threading.BoundedSemaphore(_MAX_CONCURRENT)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> AlertReceiver:
        if self._server is not None:
            return self
        try:
            handler = type("Handler", (_Handler,), {"receiver": self})
            server = _Server(("127.0.0.1", self.port), handler)
        except OSError as exc:
            raise StartError(f"alert receiver cannot listen on port {self.port}: {exc}") from None
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.1,), name="alert-receiver", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(5)

    def __enter__(self) -> AlertReceiver:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- what arrived ----------------------------------------------------------------------
    def events(self) -> list[AlertEvent]:
        """The last ``MAX_EVENTS`` events, oldest first."""
        with self._changed:
            return list(self._events)

    def firing(self) -> set[str]:
        """Names of alerts with at least one label set whose latest event is ``firing``."""
        with self._changed:
            return set(self._active.values())

    def wait_for(
        self,
        name: str,
        status: Status = "firing",
        *,
        timeout_s: float = 30.0,
        since: datetime | None = None,
    ) -> AlertEvent | None:
        """The first ``name``/``status`` event received at or after ``since`` (any time if
        None), waiting up to ``timeout_s``; None when none came."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while (found := self._find(name, status, since)) is None:
                remaining = deadline - time.monotonic()  # the deadline bounds this loop
                if remaining <= 0:
                    return None
                self._changed.wait(remaining)
            return found

    def _find(self, name: str, status: Status, since: datetime | None) -> AlertEvent | None:
        matches = (e for e in self._events if e.name == name and e.status == status)
        return next((e for e in matches if since is None or e.received_at >= since), None)

    def accept(self, body: bytes) -> int:
        """Record one webhook body; the HTTP status to answer."""
        try:
            events = parse_payload(body, aligned_now())
        except PayloadError as exc:
            log.warning("alert_payload_refused", reason=str(exc))
            return 400
        with self._changed:
            for event in events:
                self._record(event)
            self._changed.notify_all()
        self._journal(events)
        return 200

    def _record(self, event: AlertEvent) -> None:
        self._events.append(event)
        key = tuple(sorted(event.labels.items()))
        self._active.pop(key, None)  # re-inserted last, so the oldest is dropped first
        if event.status == "firing":
            self._active[key] = event.name
            while len(self._active) > MAX_ACTIVE:
                del self._active[next(iter(self._active))]

    def _journal(self, events: list[AlertEvent]) -> None:
        if self.events_file is None or not events:
            return
        lines = b"".join(orjson.dumps(e.to_json()) + b"\n" for e in events)
        try:
            with open(self.events_file, "ab") as sink:
                sink.write(lines)
        except OSError as exc:  # the in-memory record stands; a full disk must not page twice
            log.warning("alert_journal_failed", path=str(self.events_file), error=str(exc))

    @contextlib.contextmanager
    def _slot(self) -> Iterator[bool]:
        acquired = self._slots.acquire(blocking=False)
        try:
            yield acquired
        finally:
            if acquired:
                self._slots.release()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that stalls or vanishes mid-request is logged, not dumped as a traceback."""
        error = sys.exc_info()[1]
        log.warning("alert_request_failed", client=str(client_address), error=repr(error))


class _Handler(BaseHTTPRequestHandler):
    """Bound to one receiver by a subclass made in ``start`` (http.server builds a handler
    per request from a class, so the receiver travels as a class attribute)."""

    receiver: AlertReceiver
    timeout = 10  # a client that stalls mid-request loses its connection, not a thread

    def do_POST(self) -> None:  # http.server's naming
        with self.receiver._slot() as admitted:
            self._answer(self._status() if admitted else 503)

    def _status(self) -> int:
        if self.path.partition("?")[0] != "/alerts":
            return 404
        raw = self.headers.get("Content-Length")
        if raw is None:
            return 411
        try:
            length = int(raw)
        except ValueError:
            return 400
        if length < 0:
            return 400
        if length > MAX_BODY:
            self._drain(length)
            return 413
        return self.receiver.accept(self.rfile.read(length))

    def _drain(self, length: int) -> None:
        left = min(length, _MAX_DRAIN)
        with contextlib.suppress(OSError):
            while left > 0 and (chunk := self.rfile.read(min(left, 1 << 16))):
                left -= len(chunk)

    def _answer(self, status: int) -> None:
        body = b"{}" if status == 200 else orjson.dumps({"status": status})
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


def read_events(path: Path, limit: int = MAX_EVENTS) -> list[AlertEvent]:
    """The last ``limit`` events of a receiver's ``events_file`` (torn or foreign lines are
    skipped: the file may be read while it is being appended to)."""
    kept: deque[AlertEvent] = deque(maxlen=limit)
    if not path.exists():
        return []
    with open(path, "rb") as source:
        for line in source:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                kept.append(AlertEvent.from_json(orjson.loads(line)))
    return list(kept)
