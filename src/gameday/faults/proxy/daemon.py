"""``python -m gameday.faults.proxy``: the fault proxy as a process of its own.

One uvloop event loop hosts every link and the control API (uvicorn serving the Starlette
app on the same loop). When the API accepts requests the process prints exactly one line,
``gameday-proxy control on http://HOST:PORT``, and nothing else on stdout. It stops — links
closed, exit code 0 — on SIGTERM or SIGINT, and when the process named by ``--parent-pid``
dies (a pidfd, else a poll once a second), so a killed harness leaves no proxy behind even
where the launcher's PR_SET_PDEATHSIG did not apply.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import FrameType

import structlog
import uvicorn
import uvloop

from gameday.faults.proxy.api import create_app
from gameday.faults.proxy.engine import ProxyEngine
from gameday.faults.proxy.link import host_port

READY_PREFIX = "gameday-proxy control on "
TOKEN_ENV = "GAMEDAY_PROXY_TOKEN"  # noqa: S105 - a variable's name, not a secret
START_TIMEOUT_S = 30.0
log = structlog.get_logger("gameday.faults.proxy")


@dataclass(frozen=True, slots=True)
class Options:
    host: str
    control_port: int
    token: str | None
    parent_pid: int | None
    log_level: str


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_args(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m gameday.faults.proxy", description="Serve the Game Day fault proxy."
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address for every socket")
    parser.add_argument("--control-port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--token", help=f"required in X-Proxy-Token (default: ${TOKEN_ENV})")
    parser.add_argument("--parent-pid", type=int, help="exit when this process dies")
    parser.add_argument("--log-level", default="warning", choices=["debug", "info", "warning"])
    args = parser.parse_args(argv)
    if not _is_loopback(args.host):
        parser.error(f"--host must be a loopback address such as 127.0.0.1, not {args.host!r}")
    if not 0 <= args.control_port <= 65535:
        parser.error("--control-port must be between 0 and 65535")
    token = args.token or os.environ.get(TOKEN_ENV) or None
    return Options(args.host, args.control_port, token, args.parent_pid, args.log_level)


def configure_logging(level: str) -> None:
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )


def bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


@contextlib.contextmanager
def watching_parent(pid: int | None, on_gone: Callable[[], None]) -> Iterator[None]:
    """Call ``on_gone`` once ``pid`` has exited; a pidfd wakes the loop at that moment."""
    if pid is None:
        yield
        return
    loop = asyncio.get_running_loop()
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        on_gone()
        yield
        return
    except OSError:  # no pidfd (old kernel): poll
        task = loop.create_task(_poll_parent(pid, on_gone))
        try:
            yield
        finally:
            task.cancel()
        return
    loop.add_reader(fd, on_gone)
    try:
        yield
    finally:
        loop.remove_reader(fd)
        os.close(fd)


async def _poll_parent(pid: int, on_gone: Callable[[], None]) -> None:
    while True:  # ends with the daemon: the task is cancelled on the way out
        await asyncio.sleep(1.0)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            on_gone()
            return
        except PermissionError:
            continue  # alive, owned by someone else


async def _wait_started(server: uvicorn.Server, task: asyncio.Task[None]) -> bool:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started and not task.done() and time.monotonic() < deadline:  # noqa: ASYNC110 - uvicorn exposes a flag only
        await asyncio.sleep(0.01)
    return server.started


async def serve(options: Options, sock: socket.socket) -> int:
    engine = ProxyEngine(options.host)
    config = uvicorn.Config(
        create_app(engine, options.token),
        log_level=options.log_level,
        access_log=False,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)

    def stop(*_: object) -> None:
        server.should_exit = True

    def parent_gone() -> None:
        log.warning("parent_gone", pid=options.parent_pid)
        stop()

    for sig in (signal.SIGTERM, signal.SIGINT):  # uvicorn re-raises them to these on exit
        signal.signal(sig, _as_signal_handler(stop))
    try:
        with watching_parent(options.parent_pid, parent_gone):
            task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
            if await _wait_started(server, task):
                host, port = sock.getsockname()[:2]
                print(f"{READY_PREFIX}http://{host_port(host, port)}", flush=True)
            else:
                stop()
            await task
            return 0 if server.started else 1
    finally:
        await engine.close()


def _as_signal_handler(fn: Callable[[], None]) -> Callable[[int, FrameType | None], None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        fn()

    return handler


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    configure_logging(options.log_level)
    try:
        sock = bind(options.host, options.control_port)
    except OSError as exc:
        where = host_port(options.host, options.control_port)
        print(f"gameday-proxy: cannot listen on {where}: {exc.strerror}", file=sys.stderr)
        return 1
    with sock, asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(serve(options, sock))
