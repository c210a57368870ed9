"""Running the service under uvicorn: in the foreground (``bookings serve``) or on a thread
(tests and benchmarks that want real HTTP and real concurrency in one process).

The socket is bound before uvicorn starts so that ``--port 0`` works and the caller learns
the port at once. (The emulator has the same few lines; the packages may not share code.)
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType

import uvicorn

from bookings.api.app import create_app
from bookings.bootstrap import Container, build
from bookings.domain.ports import Mailer
from bookings.settings import Settings


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def make_server(container: Container, log_level: str = "warning") -> uvicorn.Server:
    config = uvicorn.Config(
        create_app(container=container),
        log_level=log_level,
        access_log=False,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        timeout_keep_alive=30,
        # On SIGTERM, in-flight requests get this long (they are bounded by the database,
        # Redis and provider timeouts anyway); then the worker exits regardless.
        timeout_graceful_shutdown=10,
        backlog=2048,
        log_config=None,
        # X-Forwarded-For names the client only when a trusted proxy sent it.
        proxy_headers=bool(container.settings.trusted_proxies.strip()),
        forwarded_allow_ips=container.settings.trusted_proxies.strip() or None,
    )
    return uvicorn.Server(config)


async def serve(server: uvicorn.Server, sock: socket.socket, on_ready: Callable[[], None]) -> None:
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started and not task.done():  # noqa: ASYNC110 - uvicorn exposes a flag only
        await asyncio.sleep(0.01)
    if server.started:
        on_ready()
    await task


class ServiceServer:
    """The service on a background thread, bound to 127.0.0.1 (a free port by default)."""

    def __init__(
        self, settings: Settings, sock: socket.socket | None = None, mailer: Mailer | None = None
    ) -> None:
        """``sock``: an already bound socket, for callers that must know the URL first
        (to register it as a webhook endpoint before the settings exist)."""
        self.container = build(settings, mailer)
        self._sock = sock or bind("127.0.0.1", 0)
        self.url = url_of(self._sock)
        self._server = make_server(self.container)
        self._thread = threading.Thread(target=self._run, name="bookings", daemon=True)

    def _run(self) -> None:
        with asyncio.Runner(loop_factory=self._server.config.get_loop_factory()) as runner:
            runner.run(self._server.serve(sockets=[self._sock]))

    def start(self, timeout_s: float = 15.0) -> ServiceServer:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the bookings service did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)
        self._sock.close()

    def __enter__(self) -> ServiceServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
