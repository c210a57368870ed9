"""Running the emulator under uvicorn: in the foreground (the CLI) or on a thread (tests,
benchmarks, any Python program that wants a provider beside it).

The socket is bound before uvicorn starts, so ``--port 0`` works and the caller learns the
real port at once. ``EmulatorServer``'s methods run on the server's own event loop, because
the state is deliberately lock-free and owned by that loop.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

import uvicorn

from stripe_emulator.app import create_app
from stripe_emulator.emulator import Emulator, Settings
from stripe_emulator.faults import FaultConfig

T = TypeVar("T")


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def serve(server: uvicorn.Server, sock: socket.socket, on_ready: Callable[[], None]) -> None:
    """Serve until signalled, calling ``on_ready`` once the app has started."""
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started and not task.done():  # noqa: ASYNC110 - uvicorn exposes a flag only
        await asyncio.sleep(0.01)
    if server.started:
        on_ready()
    await task


def make_server(
    emulator: Emulator, sock: socket.socket, log_level: str = "warning"
) -> uvicorn.Server:
    emulator.set_base_url(url_of(sock))
    config = uvicorn.Config(
        create_app(emulator),
        log_level=log_level,
        access_log=False,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        timeout_keep_alive=30,
        backlog=2048,
    )
    return uvicorn.Server(config)


class EmulatorServer:
    """The emulator on a background thread, bound to 127.0.0.1 (a free port by default)."""

    def __init__(
        self, settings: Settings | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.emulator = Emulator(settings)
        self._sock = bind(host, port)
        self.url = url_of(self._sock)
        self._server = make_server(self.emulator, self._sock)
        self._thread = threading.Thread(target=self._run, name="stripe-emulator", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            await self._server.serve(sockets=[self._sock])

        with asyncio.Runner(loop_factory=self._server.config.get_loop_factory()) as runner:
            runner.run(main())

    def start(self, timeout_s: float = 10.0) -> EmulatorServer:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the stripe emulator did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def call(self, fn: Callable[[], T], timeout_s: float = 10.0) -> T:
        """Run ``fn`` on the server's loop and return its result."""
        if self._loop is None:
            raise RuntimeError("the emulator server is not started")

        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout_s)

    # The Python API of the fault switches and the test-only controls.
    def set_faults(self, config: FaultConfig | None = None, **switches: Any) -> None:
        chosen = config or FaultConfig.from_json(switches)
        self.call(lambda: self.emulator.set_faults(chosen))

    def fault_counts(self) -> dict[str, int]:
        """How often the switches fired since the last reset."""

        def read() -> dict[str, int]:
            faults = self.emulator.state.faults
            return {
                "injected_errors": faults.injected_errors,
                "dropped_connections": faults.dropped_connections,
            }

        return self.call(read)

    def clear_faults(self) -> None:
        self.call(self.emulator.state.faults.clear)

    def reset(self) -> None:
        self.call(self.emulator.reset)

    def advance_clock(self, seconds: float) -> float:
        return self.call(lambda: self.emulator.clock.advance(seconds))

    def ledger(self) -> dict[str, Any]:
        return self.call(self.emulator.ledger)

    def deliveries(self) -> list[dict[str, Any]]:
        return self.call(lambda: list(self.emulator.dispatcher.attempts))

    def authenticate(self, payment_intent: str, succeed: bool = True) -> None:
        def run() -> None:
            pi = self.emulator.state.payment_intents.get(payment_intent)
            self.emulator.payments.authenticate(pi, succeed)

        self.call(run)
