"""What the runbook tests share: a ready drill context on a stack (to make trouble with the
drill's own probes), SQL on the stack's database, quiet SQL clients, waiting, and reading
what a runbook command said and saved."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from gameday.checkers.readers import async_database_url
from gameday.cli_drill import embedded_target
from gameday.drill.context import DrillContext
from gameday.drill.preflight import run_preflight
from gameday.drill.shop import Shop
from gameday.drill.target import CUSTOMERS
from gameday.history import HistoryWriter
from gameday.load.client import HttpClient
from gameday.load.driver import Driver
from gameday.stack.stack import Stack

T = TypeVar("T")


@contextlib.asynccontextmanager
async def drill_context(stack: Stack, out: Path, seed: int) -> AsyncIterator[DrillContext]:
    """Logged in, the resources listed (the drill's pre-flight), closed afterwards."""
    target = embedded_target(stack)
    history = HistoryWriter(out / f"history-{seed}.jsonl")
    driver = Driver(history, timeout_s=10.0)
    clients = {"ingress": HttpClient(target.base_url, connections=64)}
    ctx = DrillContext(
        target, Shop(target, driver, clients), driver, history, pace="fast", seed=seed, stack=stack
    )
    try:
        await run_preflight(ctx, out, "test", "")
        yield ctx
    finally:
        for client in clients.values():
            await client.close()
        history.close()


async def query(database_url: str, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    """Rows of one statement (none for a statement that returns none), autocommitted."""
    engine = create_async_engine(
        async_database_url(database_url), poolclass=NullPool, isolation_level="AUTOCOMMIT"
    )
    try:
        async with engine.connect() as conn:
            result = await conn.execute(sa.text(sql), params)
            return [tuple(r) for r in result] if result.returns_rows else []
    finally:
        await engine.dispose()


def quiet_client(argv: list[str], *statements: str) -> subprocess.Popen[str]:
    """A SQL client (psql, mariadb) kept open after its statements ran: what a client that
    began a transaction and went quiet looks like to the database."""
    proc = subprocess.Popen(  # noqa: S603 - our own test statements
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdin is not None
    proc.stdin.write("".join(f"{s};\n" for s in statements))
    proc.stdin.flush()
    return proc


def close(*procs: subprocess.Popen[str] | None) -> None:
    for proc in procs:
        if proc is None:
            continue
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stdin is not None:
            proc.stdin.close()


def wait_for(check: Callable[[], T], timeout_s: float = 10.0) -> T:
    """The first truthy answer of ``check`` (bounded); its last answer otherwise."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.2)
    return check()


def said(done: Any) -> str:
    """A command's output with Rich's line wrapping undone."""
    return " ".join(done.output.split())


def latest_plan(out: Path) -> dict[str, Any]:
    newest = max((out / "plans").glob("*.json"), key=lambda p: p.stat().st_mtime)
    return dict(orjson.loads(newest.read_bytes()))


def token(stack: Stack) -> str:
    """Logged in before a fault: a token is checked without the database."""
    answer = httpx.post(
        f"{stack.ingress_url}/auth/token",
        timeout=10,
        json={
            "email": CUSTOMERS[0],
            "password": stack.secrets.gameday_password,
        },
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


@contextlib.contextmanager
def traffic(stack: Stack, token: str, clients: int = 3, limit: int = 3000) -> Iterator[None]:
    """Logged-in clients listing resources until the block ends (at most ``limit``
    requests): the live traffic error-spike and slow-responses read from the metrics."""
    stop = threading.Event()
    sent = iter(range(limit))

    def client() -> None:
        with httpx.Client(
            base_url=stack.ingress_url, timeout=15, headers={"Authorization": f"Bearer {token}"}
        ) as http:
            while not stop.is_set() and next(sent, None) is not None:
                with contextlib.suppress(httpx.HTTPError):
                    http.get("/resources")
                time.sleep(0.02)  # about 50/s per client: bounded in rate as in count

    with ThreadPoolExecutor(clients) as pool:
        for _ in range(clients):
            pool.submit(client)
        try:
            time.sleep(0.5)
            yield
        finally:
            stop.set()


def set_flag(stack: Stack, name: str, enabled: bool) -> None:
    """A flag flipped by an operator through the admin API (not by a runbook)."""
    answer = httpx.put(
        f"{stack.ingress_url}/admin/flags/{name}",
        json={"enabled": enabled},
        headers={"X-Admin-Token": stack.secrets.admin_token},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text


def try_hold(stack: Stack, hours_ahead: int) -> httpx.Response:
    """A customer's hold on an hour far ahead (free unless a test took it)."""
    resource = asyncio.run(
        query(stack.database_url, "SELECT MIN(id) FROM resources WHERE gameday")
    )[0][0]
    starts = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(
        days=300, hours=hours_ahead
    )
    return httpx.post(
        f"{stack.ingress_url}/bookings",
        json={
            "resource_id": resource,
            "starts_at": starts.isoformat(),
            "ends_at": (starts + timedelta(hours=1)).isoformat(),
        },
        headers=stack.login(),
        timeout=10,
    )
