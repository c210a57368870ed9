"""One keep-alive HTTP/1.1 connection as an ``asyncio.Protocol`` fed to ``httptools``.

A Protocol rather than streams: bytes go from the transport straight into the C parser, and
the parser's callbacks complete one future per request, so a request costs one write, one
parse and one future, nothing more (streams add a buffer copy and a task wake-up per read).

A connection carries one request at a time. Anything unusual (a parse error, bytes nobody
asked for, a body over the cap, a timeout, a reset) kills the connection: a connection that
saw trouble is never reused, because its next answer could belong to the last request.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, cast

import httptools
import orjson

from gameday.load.errors import ConnectError, RequestError, ResponseLost, ResponseTimeout

MAX_BODY = 8 << 20
"""Answers with a larger body are treated as lost: the drill's endpoints answer kilobytes."""


@dataclass(slots=True)
class Response:
    """A complete answer. ``headers`` has lower-case names (repeated headers joined by ", ")."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


class Connection(asyncio.Protocol):
    """The client's pool owns it; ``send`` starts a request, the returned future ends it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[Response] | None = None
        self.open = False
        self.reusable = False
        self.idle_since = 0.0
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.size = 0
        self.until_eof = False
        self.no_body = False

    # -- the pool's side ---------------------------------------------------------------------

    def send(self, data: bytes, *, head: bool = False) -> asyncio.Future[Response]:
        """Write one request; the future holds the answer, or a ``ResponseLost`` (or a
        ``ConnectError`` when the connection closed while idle: nothing was written)."""
        waiter: asyncio.Future[Response] = self.loop.create_future()
        self.waiter = waiter
        self.reusable = False
        self.headers = {}
        self.body = []
        self.size = 0
        self.until_eof = False
        self.no_body = head
        if self.transport is None or not self.open or self.transport.is_closing():
            self.lose(ConnectError("the connection closed before the request was written"))
        else:
            self.transport.write(data)
        return waiter

    def time_out(self) -> None:
        self.lose(ResponseTimeout("no complete answer within the timeout"))

    def lose(self, exc: RequestError) -> None:
        """End the connection and fail the request in flight, if any. Idempotent."""
        self.open = False
        self.reusable = False
        if self.transport is not None:
            self.transport.abort()
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def close(self) -> None:
        self.open = False
        if self.transport is not None:
            self.transport.close()

    # -- asyncio's side ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # TCP (uvloop's too, unregistered)
        self.open = True
        self.reusable = True

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        self.reusable = False
        if self.waiter is not None and self.until_eof:  # a body delimited by the close
            self._complete()
        else:
            self.lose(ResponseLost(f"connection closed before a complete answer ({exc})"))

    def data_received(self, data: bytes) -> None:
        if self.waiter is None:
            self.lose(ResponseLost("the server sent bytes nobody asked for"))
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.lose(ResponseLost("the server switched protocols"))
        except httptools.HttpParserError as exc:
            self.lose(ResponseLost(f"malformed answer: {exc.__context__ or exc}"))

    # -- httptools' side -----------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers = self.headers
        headers[key] = f"{headers[key]}, {text}" if key in headers else text

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        headers = self.headers
        self.until_eof = (
            status >= 200
            and status not in (204, 304)
            and "content-length" not in headers
            and "transfer-encoding" not in headers
        )
        if self.no_body and status >= 200:  # the answer to HEAD: the parser would wait for one
            self.until_eof = False
            self._complete()
            self.lose(ResponseLost("not reusable after HEAD"))  # the waiter is done already

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size > MAX_BODY:
            self.lose(ResponseLost(f"answer body over {MAX_BODY} bytes"))
            raise ResponseLost("body over the cap")  # stops the parser
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.parser.get_status_code() < 200:  # an interim answer (100 Continue): skip it
            self.headers = {}
            return
        self.until_eof = False
        self._complete()

    def _complete(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is None or waiter.done():
            return
        self.reusable = self.open and self.parser.should_keep_alive()
        body = self.body[0] if len(self.body) == 1 else b"".join(self.body)
        waiter.set_result(Response(self.parser.get_status_code(), self.headers, body))
