"""Runbooks against the reference service, each condition made for real.

``webhook-failure``: a payment row is locked from outside while a correctly signed event
about it arrives, so the service's lock wait times out and it records the event as failed;
the runbook must find exactly that event, change nothing read-only, replay it through the
normal path, and find nothing afterwards. ``db-connections``: a client gone quiet in a
transaction and another waiting on its lock. ``outbox-backlog``: a confirmation that died
while the mail server was down. ``error-spike``: traffic while the database is down.
(``slow-responses`` needs a service without its time bounds: test_slow_responses.py.)"""

from __future__ import annotations

import asyncio
import shutil
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
from gameday.drill import probes
from gameday.drill.hooks import Hooks
from gameday.faults import build
from gameday.stack.options import StackOptions
from gameday.stack.stack import Stack
from tests.gameday.runbooks.support import (
    close,
    drill_context,
    latest_plan,
    query,
    quiet_client,
    said,
    token,
    traffic,
    wait_for,
)

pytestmark = [pytest.mark.slow]
runner = CliRunner()


def _args(stack: Stack, out: Path, name: str, *args: str) -> list[str]:
    return ["runbook", name, "--stack", stack.id, "--out", str(out), *args]


def _runbook(stack: Stack, out: Path, name: str, *args: str) -> Any:
    return runner.invoke(app, _args(stack, out, name, *args))


async def _failed_event(stack: Stack, out: Path) -> str:
    """A paid booking, then a copy of its ``payment_intent.succeeded`` under a new id,
    delivered while its payment row is locked: the service records it as failed."""
    engine = create_async_engine(async_database_url(stack.database_url))
    try:
        async with drill_context(stack, out, seed=5) as ctx:
            _session, booking, intent = await probes._paid_booking(ctx, "wf")
            events = await probes._wait_events(ctx, intent, "payment_intent.succeeded")
            sign = ctx.shop.sign
        event = next(e for e in events if e["type"] == "payment_intent.succeeded")
        copy = {**event, "id": f"evt_gameday_locked_{booking}"}
        payload = orjson.dumps(copy)
        async with engine.connect() as conn, conn.begin():
            await conn.execute(
                sa.text("SELECT id FROM payments WHERE booking_id = :b FOR UPDATE"), {"b": booking}
            )
            async with httpx.AsyncClient(base_url=stack.ingress_url, timeout=20) as http:
                answer = await http.post(
                    "/webhooks/stripe",
                    content=payload,
                    headers={
                        "stripe-signature": sign(payload, time.time()),
                        "content-type": "application/json",
                    },
                )
            # The service answers 503 at its request deadline while the work goes on
            # detached: the lock is held until that work, too, has given up and recorded
            # the failure (else it would apply the event the moment the lock is released).
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                status = await query(
                    stack.database_url,
                    "SELECT status FROM webhook_events WHERE id = :e",
                    e=copy["id"],
                )
                if status == [("failed",)]:
                    break
                await asyncio.sleep(0.2)
        assert answer.status_code >= 500, answer.text
        return str(copy["id"])
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def failed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, str]]:
    # A confirmation e-mail is given up on after one failed send (outbox-backlog's test).
    with Stack(StackOptions(service_env={"BOOKINGS_OUTBOX_MAX_ATTEMPTS": "1"})) as stack:
        event = asyncio.run(_failed_event(stack, tmp_path_factory.mktemp("wf")))
        yield stack, event


def _events(stack: Stack) -> list[tuple[Any, ...]]:
    return asyncio.run(
        query(
            stack.database_url,
            "SELECT id, status, attempts, deliveries FROM webhook_events ORDER BY id",
        )
    )


def test_a_failed_event_is_found_replayed_and_gone(
    failed: tuple[Stack, str], tmp_path: Path
) -> None:
    stack, event = failed
    status = {row[0]: row[1] for row in _events(stack)}
    assert status[event] == "failed"
    before = _events(stack)
    found = _runbook(stack, tmp_path, "webhook-failure")
    assert found.exit_code == 1, found.output
    assert _events(stack) == before  # read-only
    assert "1 event(s) failed to apply" in said(found)
    assert "LockTimeout" in said(found) or "lock" in said(found).lower()
    plan = latest_plan(tmp_path)
    assert [c["subject"] for c in plan["changes"]] == [f"event:{event}"]

    applied = _runbook(
        stack, tmp_path, "webhook-failure", "--apply", "--plan", plan["digest"], "--yes"
    )
    assert applied.exit_code == 0, applied.output
    assert f"{event}: processed" in said(applied)
    assert "failed_events: 1 → 0" in said(applied)
    status = {row[0]: row[1] for row in _events(stack)}
    assert status[event] == "processed"
    assert _runbook(stack, tmp_path, "webhook-failure").exit_code == 0


def _psql(stack: Stack, *statements: str) -> Any:
    return quiet_client(
        [shutil.which("psql") or "psql", "-q", "-X", stack.database_url], *statements
    )


def _sessions(stack: Stack) -> dict[int, str]:
    rows = asyncio.run(
        query(
            stack.database_url,
            "SELECT pid, state FROM pg_stat_activity WHERE application_name = 'psql'",
        )
    )
    return {int(pid): str(state) for pid, state in rows}


def test_an_idle_transaction_is_found_and_ended(failed: tuple[Stack, str], tmp_path: Path) -> None:
    stack, _event = failed
    holder = _psql(stack, "BEGIN", "SELECT id FROM resources WHERE id = 1 FOR UPDATE")
    waiter = None
    try:
        idle = wait_for(
            lambda: {p for p, s in _sessions(stack).items() if s == "idle in transaction"}
        )
        assert len(idle) == 1
        (pid,) = idle
        waiter = _psql(stack, "BEGIN", "SELECT id FROM resources WHERE id = 1 FOR UPDATE")
        wait_for(lambda: "active" in _sessions(stack).values())
        time.sleep(1.2)
        args = _args(stack, tmp_path, "db-connections", "--older-than", "1")
        found = runner.invoke(app, args)
        assert found.exit_code == 1, found.output
        text = said(found)
        assert "1 session(s) idle in a transaction for over 1 s" in text
        assert "1 session(s) waiting on a lock" in text
        assert f"'blocked_by': [{pid}]" in text
        assert f"lock holders: {pid}" in text
        assert "pool use of the answering instance" in text
        assert pid in _sessions(stack)  # read-only: still there
        # The waiter's backend would only notice its client is gone once it gets the lock:
        # end it here, so the apply's own re-diagnosis sees just the planned session.
        waiting = [p for p, s in _sessions(stack).items() if p != pid]
        waiter.kill()
        waiter.wait()
        for other in waiting:
            asyncio.run(query(stack.database_url, "SELECT pg_terminate_backend(:p)", p=other))
        plan = latest_plan(tmp_path)
        assert [c["subject"] for c in plan["changes"]] == [f"session:{pid}"]
        assert wait_for(lambda: len(_sessions(stack)) == 1)
        applied = runner.invoke(app, [*args, "--apply", "--plan", plan["digest"], "--yes"])
        assert applied.exit_code == 0, applied.output
        assert "idle_in_transaction: 1 → 0" in said(applied)
        assert pid not in _sessions(stack)
    finally:
        close(holder, waiter)


async def _paid(stack: Stack, out: Path) -> int:
    async with drill_context(stack, out, seed=77) as ctx:
        return (await probes._paid_booking(ctx, "mail"))[1]


def _mail(stack: Stack, booking: int) -> str | None:
    rows = asyncio.run(
        query(stack.database_url, "SELECT status FROM outbox WHERE booking_id = :b", b=booking)
    )
    return str(rows[0][0]) if rows else None


def test_a_dead_confirmation_is_requeued_and_sent(
    failed: tuple[Stack, str], tmp_path: Path
) -> None:
    stack, _event = failed
    hooks = Hooks(stack, tmp_path)
    entry = hooks.inject(build("down", "smtp", {}), 60)
    try:
        booking = asyncio.run(_paid(stack, tmp_path))
        assert wait_for(lambda: _mail(stack, booking) == "dead", 20)
    finally:
        assert hooks.heal(entry.id) is None
    args = _args(stack, tmp_path, "outbox-backlog")
    found = runner.invoke(app, args)
    assert found.exit_code == 1, found.output
    assert "1 message(s) given up on (dead)" in said(found)
    assert _mail(stack, booking) == "dead"  # read-only
    plan = latest_plan(tmp_path)
    assert [c["action"] for c in plan["changes"]] == ["requeue_message"]
    applied = runner.invoke(app, [*args, "--apply", "--plan", plan["digest"], "--yes"])
    assert applied.exit_code == 0, applied.output
    assert "dead_messages: 1 → 0" in said(applied)
    assert wait_for(lambda: _mail(stack, booking) == "sent", 20)
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
        args = _args(stack, tmp_path, "redis-down", "--window", "1")

        def diagnosed() -> Any:  # the service notices within its breaker's first failures
            done = runner.invoke(app, args)
            return done if "Redis is unreachable" in said(done) else None

        found = wait_for(diagnosed)
        assert found is not None
        assert found.exit_code == 1, found.output
        assert "REDIS_OPTIONAL_FALLBACK is off" in said(found)
        assert _flag(stack, "REDIS_OPTIONAL_FALLBACK") is False  # read-only
        plan = latest_plan(tmp_path)
        assert [c["subject"] for c in plan["changes"]] == ["flag:REDIS_OPTIONAL_FALLBACK"]
        applied = runner.invoke(app, [*args, "--apply", "--plan", plan["digest"], "--yes"])
        assert "fallback_off: 1 → 0" in said(applied), applied.output
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
        args = _args(stack, tmp_path, "error-spike", "--window", "1")
        found = runner.invoke(app, args)
        assert found.exit_code == 1, found.output
        text = said(found)
        assert "safeguard flag(s) off: BOOKING_ATOMIC_LOCKING" in text
        assert "flag BOOKING_ATOMIC_LOCKING set to False by admin:" in text
        plan = latest_plan(tmp_path)
        applied = runner.invoke(app, [*args, "--apply", "--plan", plan["digest"], "--yes"])
        assert applied.exit_code == 0, applied.output
        assert "safeguards_off: 1 → 0" in said(applied)
        assert _flag(stack, "BOOKING_ATOMIC_LOCKING") is True
    finally:
        _flag(stack, "BOOKING_ATOMIC_LOCKING", True)


def test_slow_responses_is_a_diagnosis_only(failed: tuple[Stack, str], tmp_path: Path) -> None:
    stack, _event = failed
    done = _runbook(stack, tmp_path, "slow-responses", "--window", "1")
    assert done.exit_code in (0, 1), done.output
    assert "sessions waiting on locks:" in said(done)
    plan = next((tmp_path / "plans").glob("*.json")).stem
    refused = _runbook(stack, tmp_path, "slow-responses", "--apply", "--plan", plan, "--yes")
    assert refused.exit_code == 5
    assert "no automated resolution" in said(refused)


def test_error_spike_finds_the_route_answering_5xx(
    failed: tuple[Stack, str], tmp_path: Path
) -> None:
    stack, _event = failed
    bearer = token(stack)
    hooks = Hooks(stack, tmp_path)
    entry = hooks.inject(build("down", "db", {}), 60)
    try:
        with traffic(stack, bearer):
            found = _runbook(stack, tmp_path, "error-spike", "--window", "2")
    finally:
        assert hooks.heal(entry.id) is None
    assert found.exit_code == 1, found.output
    text = said(found)
    assert "route(s) answering 5xx to 5 % or more of requests" in text
    assert "'route': '/resources'" in text
    assert "routes_erroring 1" in text
