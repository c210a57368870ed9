"""The proxy between a real PostgreSQL client (asyncpg) and the machine's PostgreSQL.

Each test drives asyncpg on an ``asyncio.Runner`` of its own and the proxy through the
synchronous control client, so the steps read in the order a drill takes them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest

from gameday.faults.proxy import ProxyClient

MakeLink = Callable[..., tuple[str, int]]
PG_PORT = 5432
BROKEN = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


@pytest.fixture
def runner() -> Iterator[asyncio.Runner]:
    with asyncio.Runner() as loop_runner:
        yield loop_runner


@pytest.fixture
def pg(make_link: MakeLink) -> tuple[str, int]:
    return make_link(PG_PORT)


async def _connect(port: int, within_s: float = 5.0) -> Any:
    return await asyncpg.connect(
        host="127.0.0.1", port=port, user="postgres", database="postgres", ssl=False,
        timeout=within_s,
    )  # fmt: skip


async def _pool(port: int) -> Any:
    return await asyncpg.create_pool(
        host="127.0.0.1", port=port, user="postgres", database="postgres", ssl=False,
        min_size=2, max_size=2,
    )  # fmt: skip


def _timed(runner: asyncio.Runner, step: Callable[[], Awaitable[object]]) -> float:
    start = time.perf_counter()
    runner.run(step())  # type: ignore[arg-type]
    return time.perf_counter() - start


def test_queries_pass_unchanged(
    runner: asyncio.Runner, proxy: ProxyClient, pg: tuple[str, int]
) -> None:
    name, port = pg
    conn = runner.run(_connect(port))
    try:
        assert runner.run(conn.fetchval("SELECT 1")) == 1
        total = runner.run(conn.fetchval("SELECT sum(g) FROM generate_series(1, 100000) g"))
        assert total == 5_000_050_000
        assert len(runner.run(conn.fetchval("SELECT repeat('x', 1000000)"))) == 1_000_000
    finally:
        runner.run(conn.close())
    stats = proxy.link(name)["stats"]
    assert stats["bytes_downstream"] > 1_000_000
    assert stats["connections_total"] == 1


def test_latency_is_added_each_way_and_jitter_stays_in_bounds(
    runner: asyncio.Runner, proxy: ProxyClient, pg: tuple[str, int]
) -> None:
    name, port = pg
    conn = runner.run(_connect(port))
    try:
        runner.run(conn.execute("SELECT 1"))
        toxic = proxy.add_toxic(name, "latency", ms=50)
        plain = [_timed(runner, lambda: conn.execute("SELECT 1")) for _ in range(5)]
        assert min(plain) >= 0.100
        assert max(plain) < 0.100 + 0.4
        proxy.remove_toxic(name, toxic)
        proxy.add_toxic(name, "latency", ms=40, jitter_ms=20)
        jittered = [_timed(runner, lambda: conn.execute("SELECT 1")) for _ in range(10)]
        assert min(jittered) >= 0.040
        assert max(jittered) < 0.120 + 0.4
        assert max(jittered) - min(jittered) > 0.002
        proxy.clear(name)
        assert _timed(runner, lambda: conn.execute("SELECT 1")) < 0.05
    finally:
        runner.run(conn.close())


def test_down_refuses_breaks_and_heals_under_the_same_pool(
    runner: asyncio.Runner, proxy: ProxyClient, pg: tuple[str, int]
) -> None:
    name, port = pg
    pool = runner.run(_pool(port))
    single = runner.run(_connect(port))
    try:
        assert runner.run(pool.fetchval("SELECT 1")) == 1
        toxic = proxy.add_toxic(name, "down")
        with pytest.raises(ConnectionRefusedError):
            runner.run(_connect(port))
        with pytest.raises(BROKEN):
            runner.run(single.fetchval("SELECT 1"))
        with pytest.raises(BROKEN):
            runner.run(pool.fetchval("SELECT 1"))
        assert proxy.link(name)["stats"]["connections_open"] == 0
        proxy.remove_toxic(name, toxic)
        assert proxy.link(name)["listen_port"] == port
        for _ in range(4):
            assert runner.run(pool.fetchval("SELECT 1")) == 1
    finally:
        single.terminate()
        runner.run(pool.close())


def test_blackhole_times_out_and_heals(
    runner: asyncio.Runner, proxy: ProxyClient, pg: tuple[str, int]
) -> None:
    name, port = pg
    conn = runner.run(_connect(port))
    try:
        toxic = proxy.add_toxic(name, "blackhole")
        with pytest.raises(TimeoutError):
            runner.run(asyncio.wait_for(conn.fetchval("SELECT 1"), 0.5))
        with pytest.raises(TimeoutError):
            runner.run(_connect(port, within_s=0.5))
        proxy.remove_toxic(name, toxic)
        fresh = runner.run(_connect(port))
        assert runner.run(fresh.fetchval("SELECT 1")) == 1
        runner.run(fresh.close())
    finally:
        conn.terminate()
