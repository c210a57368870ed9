"""The driver against the real scripted server: one history line per request, the right type
for every outcome, bursts that really overlap, a steady rate that holds and stays bounded."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gameday.history import HistoryWriter, Op, read_history
from gameday.load import Call, Driver, HttpClient, LoadLimit, Response, run
from tests.gameday.load.test_client import ScriptedServer, closed_port


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedServer]:
    with ScriptedServer() as running:
        yield running


@pytest.fixture
def history(tmp_path: Path) -> Iterator[HistoryWriter]:
    with HistoryWriter(tmp_path / "history.jsonl") as writer:
        yield writer


def get(path: str, f: str = "get", **extra: Any) -> Call:
    return Call(f=f, method="GET", path=path, endpoint=f"GET {path}", target="ingress", **extra)


def test_every_outcome_is_recorded_with_its_type(
    server: ScriptedServer, history: HistoryWriter
) -> None:
    driver = Driver(history, scenario="s1", phase="baseline", timeout_s=0.3)

    def slot(response: Response) -> dict[str, Any]:
        return {"ok": response.json()["ok"]}

    async def main() -> list[Op]:
        async with HttpClient(server.url) as client:
            ops = [
                await driver.call(client, get("/ok", "hold"), "p1", value=slot),
                await driver.call(client, get("/status/409"), "p1"),
                await driver.call(client, get("/status/503"), "p1"),
                await driver.call(client, get("/delay/2000"), "p2"),
            ]
        async with HttpClient(f"http://127.0.0.1:{closed_port()}") as nowhere:
            driver.phase = "fault"
            ops.append(await driver.call(nowhere, get("/ok"), "p3"))
        return ops

    ok, refused, overloaded, timed_out, unsent = asyncio.run(main())
    assert (ok.type, ok.status, ok.f, ok.value) == ("ok", 200, "hold", {"ok": True})
    assert ok.correlation_id.startswith("req-")
    assert (ok.scenario, ok.phase, ok.target, ok.process) == ("s1", "baseline", "ingress", "p1")
    assert (refused.type, refused.status, refused.error) == ("fail", 409, "slot_taken")
    assert (overloaded.type, overloaded.status, overloaded.error) == ("info", 503, "overloaded")
    assert (timed_out.type, timed_out.status, timed_out.error) == ("info", 0, "ResponseTimeout")
    assert 0.25 < timed_out.latency_s < 1.0
    assert (unsent.type, unsent.error, unsent.phase) == ("fail", "ConnectError", "fault")
    history.close()
    assert list(read_history(history.path)) == [ok, refused, overloaded, timed_out, unsent]
    assert [op.index for op in (ok, refused, overloaded, timed_out, unsent)] == [0, 1, 2, 3, 4]


def test_the_idempotency_key_is_recorded_and_sent(
    server: ScriptedServer, history: HistoryWriter
) -> None:
    call = Call("pay", "POST", "/echo", "POST /echo", json={"amount": 10}, idempotency_key="k-1")
    seen: dict[str, Any] = {}

    async def main() -> Op:
        async with HttpClient(server.url) as client:
            return await Driver(history).call(
                client, call, "p", value=lambda response: seen.update(response.json())
            )

    op = asyncio.run(main())
    assert op.idempotency_key == "k-1"
    assert seen == {"type": "application/json", "body": '{"amount":10}', "key": "k-1"}


def test_cancelled_in_flight_is_info_and_reraised(
    server: ScriptedServer, history: HistoryWriter
) -> None:
    driver = Driver(history)

    async def main() -> None:
        async with HttpClient(server.url) as client:
            task = asyncio.create_task(driver.call(client, get("/delay/1000"), "p"))
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    run(main())
    history.close()
    (op,) = read_history(history.path)
    assert (op.type, op.status, op.error) == ("info", 0, "cancelled")


def test_a_burst_is_released_at_one_instant(server: ScriptedServer, history: HistoryWriter) -> None:
    """The server holds every request until 50 are in flight at once: without true overlap the
    requests would wait 5 s each. The answers report how many were in flight when released."""
    driver = Driver(history, timeout_s=8)

    async def main() -> list[Op]:
        async with HttpClient(server.url, connections=50) as client:
            return await driver.burst(client, [get("/barrier/50")] * 50, process_prefix="racer")

    started = time.monotonic()
    ops = run(main())
    assert time.monotonic() - started < 3
    assert [op.type for op in ops] == ["ok"] * 50
    assert server.peak["/barrier/50"] == 50
    assert [op.process for op in ops[:2]] == ["racer0", "racer1"]
    assert max(op.t0 for op in ops) - min(op.t0 for op in ops) < 0.05


def test_steady_holds_the_rate(server: ScriptedServer, history: HistoryWriter) -> None:
    driver = Driver(history)

    async def main() -> tuple[int, float]:
        async with HttpClient(server.url, connections=16) as client:

            async def flow(i: int) -> None:
                await driver.call(client, get("/delay/2"), f"s{i % 16}")

            begin = time.monotonic()
            started = await driver.steady(flow, rate=200, duration_s=1.0, concurrency=16)
            return started, time.monotonic() - begin

    started, elapsed = run(main())
    arrivals = server.arrivals["/delay/2"]
    assert (started, driver.dropped, driver.ops) == (200, 0, 200)
    assert 0.95 < elapsed < 1.5
    first_half = sum(1 for t in arrivals if t < arrivals[0] + 0.5)
    assert 70 <= first_half <= 130  # spread over the second, not sent in a lump


def test_steady_never_exceeds_its_concurrency(
    server: ScriptedServer, history: HistoryWriter
) -> None:
    driver = Driver(history)

    async def main() -> int:
        async with HttpClient(server.url, connections=32) as client:

            async def flow(i: int) -> None:
                await driver.call(client, get("/delay/100"), f"s{i}")

            return await driver.steady(flow, rate=200, duration_s=0.5, concurrency=4)

    started = run(main())
    assert server.peak["/delay/100"] == 4
    assert started + driver.dropped == 100
    assert driver.dropped > 50
    assert driver.summary()["GET /delay/100"]["count"] == started


def test_cancelling_steady_records_what_was_in_flight(
    server: ScriptedServer, history: HistoryWriter
) -> None:
    driver = Driver(history)

    async def main() -> None:
        async with HttpClient(server.url) as client:

            async def flow(i: int) -> None:
                await driver.call(client, get("/delay/3000"), f"s{i}")

            task = asyncio.create_task(driver.steady(flow, rate=50, duration_s=5, concurrency=3))
            await asyncio.sleep(0.3)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert len(asyncio.all_tasks()) == 1  # only main(): no flow left behind

    run(main())
    history.close()
    ops = list(read_history(history.path))
    assert len(ops) == 3
    assert {(op.type, op.error) for op in ops} == {("info", "cancelled")}


def test_max_ops_bounds_every_shape(server: ScriptedServer, history: HistoryWriter) -> None:
    driver = Driver(history, max_ops=5)

    async def main() -> int:
        async with HttpClient(server.url) as client:
            for i in range(3):
                await driver.call(client, get("/ok"), f"p{i}")
            with pytest.raises(LoadLimit):
                await driver.burst(client, [get("/ok")] * 3)

            async def flow(i: int) -> None:
                await driver.call(client, get("/ok"), f"s{i}")

            started = await driver.steady(flow, rate=100, duration_s=0.3)
            with pytest.raises(LoadLimit, match="max_ops=5"):
                await driver.call(client, get("/ok"), "late")
            return started

    assert run(main()) == 2
    assert history.count == 5


def test_summary_and_live_window(server: ScriptedServer, history: HistoryWriter) -> None:
    driver = Driver(history)

    async def main() -> None:
        async with HttpClient(server.url) as client:
            for i in range(5):
                await driver.call(client, get("/delay/20"), f"p{i}")
            for path in ("/status/409", "/status/503"):
                await driver.call(client, get(path), "p")

    run(main())
    endpoint = driver.summary()["GET /delay/20"]
    assert endpoint["count"] == 5
    assert endpoint["status"] == {"200": 5}
    assert 20 <= endpoint["p50_ms"] <= endpoint["p95_ms"] <= endpoint["p99_ms"]
    assert endpoint["p99_ms"] <= endpoint["max_ms"] < 500
    assert driver.summary()["GET /status/503"]["status"] == {"503": 1}

    live = driver.window(5)
    assert live.count == 7
    assert live.error_rate == pytest.approx(1 / 7)
    assert 20 <= live.p95_ms < 500
    assert live.requests_per_s > 7 / 5
