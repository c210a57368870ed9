"""Runbooks against the reference service.

``webhook-failure`` with processing made to fail for real: a payment row is locked from
outside while a correctly signed event about it arrives, so the service's lock wait times
out and it records the event as failed. The runbook must find exactly that event, change
nothing read-only, replay it through the normal path, and find nothing afterwards.
``db-connections`` with a real client gone quiet in a transaction and another waiting on
its lock. ``outbox-backlog`` with a confirmation that died while the mail server was down."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine
from typer.testing import CliRunner

from gameday.checkers.readers import async_database_url
from gameday.cli import app
from gameday.cli_drill import embedded_target
from gameday.drill import probes
from gameday.drill.context import DrillContext
from gameday.drill.hooks import Hooks
from gameday.drill.preflight import run_preflight
from gameday.drill.shop import Shop
from gameday.faults import build
from gameday.history import HistoryWriter
from gameday.load.client import HttpClient
from gameday.load.driver import Driver
from gameday.stack.options import StackOptions
from gameday.stack.stack import Stack

pytestmark = [pytest.mark.slow]
runner = CliRunner()


async def _failed_event(stack: Stack, out: Path) -> str:
    """A paid booking, then a copy of its ``payment_intent.succeeded`` under a new id,
    delivered while its payment row is locked: the service records it as failed."""
    target = embedded_target(stack)
    history = HistoryWriter(out / "history.jsonl")
    driver = Driver(history, timeout_s=10.0)
    clients = {"ingress": HttpClient(target.base_url, connections=8)}
    ctx = DrillContext(
        target, Shop(target, driver, clients), driver, history, pace="fast", seed=5, stack=stack
    )
    engine = create_async_engine(async_database_url(stack.database_url))
    try:
        await run_preflight(ctx, out, "test", "")
        _session, booking, intent = await probes._paid_booking(ctx, "wf")
        events = await probes._wait_events(ctx, intent, "payment_intent.succeeded")
        event = next(e for e in events if e["type"] == "payment_intent.succeeded")
        copy = {**event, "id": f"evt_gameday_locked_{booking}"}
        payload = orjson.dumps(copy)
        async with engine.connect() as conn, conn.begin():
            await conn.execute(
                sa.text("SELECT id FROM payments WHERE booking_id = :b FOR UPDATE"), {"b": booking}
            )
            async with httpx.AsyncClient(base_url=target.base_url, timeout=20) as http:
                answer = await http.post(
                    "/webhooks/stripe",
                    content=payload,
                    headers={
                        "stripe-signature": ctx.shop.sign(payload, time.time()),
                        "content-type": "application/json",
                    },
                )
            # The service answers 503 at its request deadline while the work goes on
            # detached: the lock is held until that work, too, has given up and recorded
            # the failure (else it would apply the event the moment the lock is released).
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                async with engine.connect() as probe:
                    found = (
                        await probe.execute(
                            sa.text("SELECT status FROM webhook_events WHERE id = :e"),
                            {"e": copy["id"]},
                        )
                    ).scalar()
                if found == "failed":
                    break
                await asyncio.sleep(0.2)
        assert answer.status_code >= 500, answer.text
        return str(copy["id"])
    finally:
        await engine.dispose()
        for client in clients.values():
            await client.close()
        history.close()


@pytest.fixture(scope="module")
def failed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, str]]:
    # A confirmation e-mail is given up on after one failed send (outbox-backlog's test).
    with Stack(StackOptions(service_env={"BOOKINGS_OUTBOX_MAX_ATTEMPTS": "1"})) as stack:
        event = asyncio.run(_failed_event(stack, tmp_path_factory.mktemp("wf")))
        yield stack, event


async def _events(stack: Stack) -> list[tuple[Any, ...]]:
    engine = create_async_engine(async_database_url(stack.database_url))
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                sa.text("SELECT id, status, attempts, deliveries FROM webhook_events ORDER BY id")
            )
            return [tuple(r) for r in rows]
    finally:
        await engine.dispose()


def _said(done: Any) -> str:
    return " ".join(done.output.split())


def test_a_failed_event_is_found_replayed_and_gone(
    failed: tuple[Stack, str], tmp_path: Path
) -> None:
    stack, event = failed
    status = {row[0]: row[1] for row in asyncio.run(_events(stack))}
    assert status[event] == "failed"
    before = asyncio.run(_events(stack))
    args = ["runbook", "webhook-failure", "--stack", stack.id, "--out", str(tmp_path)]
    found = runner.invoke(app, args)
    assert found.exit_code == 1, found.output
    assert asyncio.run(_events(stack)) == before  # read-only
    assert "1 event(s) failed to apply" in _said(found)
    assert "LockTimeout" in _said(found) or "lock" in _said(found).lower()
    plan = orjson.loads(next((tmp_path / "plans").glob("*.json")).read_bytes())
    assert [c["subject"] for c in plan["changes"]] == [f"event:{event}"]

    applied = runner.invoke(app, [*args, "--apply", "--plan", plan["digest"], "--yes"])
    assert applied.exit_code == 0, applied.output
    assert f"{event}: processed" in _said(applied)
    assert "failed_events: 1 → 0" in _said(applied)
    status = {row[0]: row[1] for row in asyncio.run(_events(stack))}
    assert status[event] == "processed"
    assert runner.invoke(app, args).exit_code == 0


def _psql(stack: Stack, *statements: str) -> subprocess.Popen[str]:
    """A psql session kept open with its statements run: what a client that began a
    transaction and went quiet looks like to the database."""
    proc = subprocess.Popen(  # noqa: S603 - psql with our own test statements
        [shutil.which("psql") or "psql", "-q", "-X", stack.database_url],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdin is not None
    proc.stdin.write("".join(f"{s};\n" for s in statements))
    proc.stdin.flush()
    return proc


async def _sessions(stack: Stack) -> dict[int, str]:
    engine = create_async_engine(async_database_url(stack.database_url))
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                sa.text("SELECT pid, state FROM pg_stat_activity WHERE application_name = 'psql'")
            )
            return {int(pid): str(state) for pid, state in rows}
    finally:
        await engine.dispose()


async def _terminate(stack: Stack, pids: list[int]) -> None:
    engine = create_async_engine(async_database_url(stack.database_url))
    try:
        async with engine.connect() as conn:
            for pid in pids:
                await conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid})
    finally:
        await engine.dispose()


def _wait_for(check: Any, timeout_s: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    return check()


def test_an_idle_transaction_is_found_and_ended(failed: tuple[Stack, str], tmp_path: Path) -> None:
    stack, _event = failed
    holder = _psql(stack, "BEGIN", "SELECT id FROM resources WHERE id = 1 FOR UPDATE")
    waiter = None
    try:
        idle = _wait_for(
            lambda: {
                p for p, s in asyncio.run(_sessions(stack)).items() if s == "idle in transaction"
            }
        )
        assert len(idle) == 1
        (pid,) = idle
        waiter = _psql(stack, "BEGIN", "SELECT id FROM resources WHERE id = 1 FOR UPDATE")
        _wait_for(lambda: "active" in asyncio.run(_sessions(stack)).values())
        time.sleep(1.2)
        args = [
            "runbook",
            "db-connections",
            "--stack",
            stack.id,
            "--out",
            str(tmp_path),
            "--older-than",
            "1",
        ]
        found = runner.invoke(app, args)
        assert found.exit_code == 1, found.output
        said = _said(found)
        assert "1 session(s) idle in a transaction for over 1 s" in said
        assert "1 session(s) waiting on a lock" in said
        assert f"'blocked_by': [{pid}]" in said
        assert f"lock holders: {pid}" in said
        assert "pool use of the answering instance" in said
        assert pid in asyncio.run(_sessions(stack))  # read-only: still there
        # The waiter's backend would only notice its client is gone once it gets the lock:
        # end it here, so the apply's own re-diagnosis sees just the planned session.
        waiting = [p for p, s in asyncio.run(_sessions(stack)).items() if p != pid]
        waiter.kill()
        waiter.wait()
        asyncio.run(_terminate(stack, waiting))
        plan = orjson.loads(
            max((tmp_path / "plans").glob("*.json"), key=lambda p: p.stat().st_mtime).read_bytes()
        )
        assert [c["subject"] for c in plan["changes"]] == [f"session:{pid}"]
        assert _wait_for(lambda: len(asyncio.run(_sessions(stack))) == 1)
        applied = runner.invoke(app, [*args, "--apply", "--plan", plan["digest"], "--yes"])
        assert applied.exit_code == 0, applied.output
        assert "idle_in_transaction: 1 → 0" in _said(applied)
        assert pid not in asyncio.run(_sessions(stack))
    finally:
        for proc in (holder, waiter):
            if proc is not None:
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
                if proc.stdin is not None:
                    proc.stdin.close()


async def _paid(stack: Stack, out: Path) -> int:
    target = embedded_target(stack)
    history = HistoryWriter(out / "paid.jsonl")
    driver = Driver(history, timeout_s=10.0)
    clients = {"ingress": HttpClient(target.base_url, connections=8)}
    ctx = DrillContext(
        target, Shop(target, driver, clients), driver, history, pace="fast", seed=77, stack=stack
    )
    try:
        await run_preflight(ctx, out, "test", "")
        return (await probes._paid_booking(ctx, "mail"))[1]
    finally:
        for client in clients.values():
            await client.close()
        history.close()


async def _mail(stack: Stack, booking: int) -> str | None:
    engine = create_async_engine(async_database_url(stack.database_url))
    try:
        async with engine.connect() as conn:
            return (
                await conn.execute(
                    sa.text("SELECT status FROM outbox WHERE booking_id = :b"), {"b": booking}
                )
            ).scalar()
    finally:
        await engine.dispose()


def test_a_dead_confirmation_is_requeued_and_sent(
    failed: tuple[Stack, str], tmp_path: Path
) -> None:
    stack, _event = failed
    hooks = Hooks(stack, tmp_path)
    entry = hooks.inject(build("down", "smtp", {}), 60)
    try:
        booking = asyncio.run(_paid(stack, tmp_path))
        assert _wait_for(lambda: asyncio.run(_mail(stack, booking)) == "dead", 20)
    finally:
        assert hooks.heal(entry.id) is None
    args = ["runbook", "outbox-backlog", "--stack", stack.id, "--out", str(tmp_path)]
    found = runner.invoke(app, args)
    assert found.exit_code == 1, found.output
    assert "1 message(s) given up on (dead)" in _said(found)
    assert asyncio.run(_mail(stack, booking)) == "dead"  # read-only
    plan = orjson.loads(next((tmp_path / "plans").glob("*.json")).read_bytes())
    assert [c["action"] for c in plan["changes"]] == ["requeue_message"]
    applied = runner.invoke(app, [*args, "--apply", "--plan", plan["digest"], "--yes"])
    assert applied.exit_code == 0, applied.output
    assert "dead_messages: 1 → 0" in _said(applied)
    assert _wait_for(lambda: asyncio.run(_mail(stack, booking)) == "sent", 20)
    assert runner.invoke(app, args).exit_code == 0


def _flag(stack: Stack, name: str, enabled: bool | None = None) -> bool:
    admin = {"X-Admin-Token": stack.secrets.admin_token}
    if enabled is not None:
        answer = httpx.put(
            f"{stack.ingress_url}/admin/flags/{name}",
            json={"enabled": enabled},
            headers=admin,
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
    return bool(
        httpx.get(f"{stack.ingress_url}/admin/flags", headers=admin, timeout=10).json()[name]
    )


def test_redis_down_with_the_fallback_off_turns_it_on(
    failed: tuple[Stack, str], tmp_path: Path
) -> None:
    stack, _event = failed
    _flag(stack, "REDIS_OPTIONAL_FALLBACK", False)
    hooks = Hooks(stack, tmp_path)
    entry = hooks.inject(build("down", "redis", {}), 60)
    try:
        args = [
            "runbook",
            "redis-down",
            "--stack",
            stack.id,
            "--out",
            str(tmp_path),
            "--window",
            "1",
        ]
        found = _wait_for(
            lambda: (d := runner.invoke(app, args)) and "Redis is unreachable" in _said(d) and d
        )
        assert found.exit_code == 1, found.output
        assert "REDIS_OPTIONAL_FALLBACK is off" in _said(found)
        assert _flag(stack, "REDIS_OPTIONAL_FALLBACK") is False  # read-only
        plan = orjson.loads(
            max((tmp_path / "plans").glob("*.json"), key=lambda p: p.stat().st_mtime).read_bytes()
        )
        assert [c["subject"] for c in plan["changes"]] == ["flag:REDIS_OPTIONAL_FALLBACK"]
        applied = runner.invoke(app, [*args, "--apply", "--plan", plan["digest"], "--yes"])
        assert "fallback_off: 1 → 0" in _said(applied), applied.output
        assert applied.exit_code == 1  # mitigated, but Redis itself is still down
        assert _flag(stack, "REDIS_OPTIONAL_FALLBACK") is True
    finally:
        assert hooks.heal(entry.id) is None
        _flag(stack, "REDIS_OPTIONAL_FALLBACK", True)


def test_error_spike_finds_the_safeguard_turned_off_and_restores_it(
    failed: tuple[Stack, str], tmp_path: Path
) -> None:
    stack, _event = failed
    _flag(stack, "BOOKING_ATOMIC_LOCKING", False)
    try:
        args = [
            "runbook",
            "error-spike",
            "--stack",
            stack.id,
            "--out",
            str(tmp_path),
            "--window",
            "1",
        ]
        found = runner.invoke(app, args)
        assert found.exit_code == 1, found.output
        said = _said(found)
        assert "safeguard flag(s) off: BOOKING_ATOMIC_LOCKING" in said
        assert "flag BOOKING_ATOMIC_LOCKING set to False by admin:" in said
        plan = orjson.loads(
            max((tmp_path / "plans").glob("*.json"), key=lambda p: p.stat().st_mtime).read_bytes()
        )
        applied = runner.invoke(app, [*args, "--apply", "--plan", plan["digest"], "--yes"])
        assert applied.exit_code == 0, applied.output
        assert "safeguards_off: 1 → 0" in _said(applied)
        assert _flag(stack, "BOOKING_ATOMIC_LOCKING") is True
    finally:
        _flag(stack, "BOOKING_ATOMIC_LOCKING", True)


def test_slow_responses_is_a_diagnosis_only(failed: tuple[Stack, str], tmp_path: Path) -> None:
    stack, _event = failed
    done = runner.invoke(
        app,
        ["runbook", "slow-responses", "--stack", stack.id, "--out", str(tmp_path), "--window", "1"],
    )
    assert done.exit_code in (0, 1), done.output
    assert "sessions waiting on locks:" in _said(done)
    refused = runner.invoke(
        app,
        [
            "runbook",
            "slow-responses",
            "--stack",
            stack.id,
            "--out",
            str(tmp_path),
            "--apply",
            "--plan",
            next((tmp_path / "plans").glob("*.json")).stem,
            "--yes",
        ],
    )
    assert refused.exit_code == 5
    assert "no automated resolution" in _said(refused)
