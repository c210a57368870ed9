"""The runbooks against an embedded stack running the unsafe service, with the conditions
made for real: a mixed-key payment storm charges bookings twice at the provider emulator, a
slot race sells slots twice. Each runbook must find exactly those, change nothing in
read-only mode, refuse on drift and past its caps, fix them on apply, find nothing on a
second run, and never refund twice."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import stripe
from typer.testing import CliRunner

from gameday.checkers.readers import read_provider
from gameday.cli import app
from gameday.drill import probes
from gameday.runbooks.bookings import clusters
from gameday.runbooks.payments import FROZEN
from gameday.stack.options import StackOptions
from gameday.stack.stack import Stack
from tests.gameday.runbooks.support import (
    drill_context,
    latest_plan,
    query,
    said,
    set_flag,
    try_hold,
    wait_for,
)

pytestmark = [pytest.mark.slow]
runner = CliRunner()


@dataclass
class Trouble:
    stack: Stack
    storm_bookings: list[int]
    race_bookings: list[int]


async def _make_trouble(stack: Stack, out: Path) -> Trouble:
    async with drill_context(stack, out, seed=11) as ctx:
        for _ in range(2):
            await probes.pay_storm(ctx, parallel=12, keys="mixed")
        storm = sorted(ctx.bookings)
        ctx.new_scenario()
        await probes.slot_race(ctx, users=8, rounds=2)
        return Trouble(stack, storm, sorted(ctx.bookings))


@pytest.fixture(scope="module")
def trouble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trouble]:
    with Stack(StackOptions(unsafe=True)) as stack:
        yield asyncio.run(_make_trouble(stack, tmp_path_factory.mktemp("trouble")))


def _runbook(stack: Stack, out: Path, name: str, *args: str) -> Any:
    return runner.invoke(
        app,
        [
            "runbook",
            name,
            "--stack",
            stack.id,
            "--out",
            str(out),
            "--incident",
            "INC-TEST",
            "--who",
            "tester",
            *args,
        ],
    )


def _audit(out: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in (out / "audit.jsonl").read_bytes().splitlines()]


def _intents(stack: Stack) -> list[Any]:
    return read_provider(stack.provider_url, stack.secrets.provider_key)


def _refunds(stack: Stack) -> int:
    client = stripe.StripeClient(
        stack.secrets.provider_key, base_addresses={"api": stack.provider_url}
    )
    return len(list(client.v1.refunds.list(params={"limit": 100}).auto_paging_iter()))


async def _db_rows(stack: Stack) -> dict[str, Any]:
    return {
        table: await query(stack.database_url, f"SELECT id, status FROM {table} ORDER BY id")  # noqa: S608 - fixed names
        for table in ("bookings", "payments")
    }


def _snapshot(stack: Stack) -> tuple[Any, ...]:
    intents = sorted((i.id, i.status, i.amount_refunded) for i in _intents(stack))
    return asyncio.run(_db_rows(stack)), intents, _refunds(stack)


def test_runbook_list_names_every_runbook() -> None:
    done = runner.invoke(app, ["runbook", "list"])
    assert done.exit_code == 0
    for name in (
        "payment-anomaly",
        "double-booking",
        "webhook-failure",
        "db-connections",
        "outbox-backlog",
        "error-spike",
        "redis-down",
        "slow-responses",
        "stuck-holds",
        "security",
    ):
        assert name in done.output


def _frozen(answer: httpx.Response) -> httpx.Response | None:
    if answer.status_code == 503 and answer.json()["error"] == "checkout_frozen":
        return answer
    return None


def test_payment_anomaly_finds_fixes_and_never_refunds_twice(
    trouble: Trouble, tmp_path: Path
) -> None:
    stack = trouble.stack
    charged: dict[str, list[str]] = {}
    for i in _intents(stack):
        if i.status == "succeeded" and not i.amount_refunded and i.metadata.get("booking_id"):
            charged.setdefault(i.metadata["booking_id"], []).append(i.id)
    doubled = {b: ids for b, ids in charged.items() if len(ids) > 1}
    assert doubled, "the unsafe storm should have charged a booking twice"
    extra = sum(len(ids) - 1 for ids in doubled.values())

    before = _snapshot(stack)
    found = _runbook(stack, tmp_path, "payment-anomaly")
    assert found.exit_code == 1, found.output
    assert _snapshot(stack) == before  # read-only: no row, intent or refund changed
    plan = latest_plan(tmp_path)
    assert {c["subject"] for c in plan["changes"]} <= {i for ids in doubled.values() for i in ids}
    assert len(plan["changes"]) == extra
    assert {c["detail"]["booking_id"] for c in plan["changes"]} == {int(b) for b in doubled}

    capped = _runbook(
        stack,
        tmp_path,
        "payment-anomaly",
        "--apply",
        "--plan",
        plan["digest"],
        "--yes",
        "--max-refund",
        "0.01",
    )
    assert capped.exit_code == 5, capped.output
    assert "exceed --max-refund" in said(capped)
    unconfirmed = _runbook(stack, tmp_path, "payment-anomaly", "--apply", "--plan", plan["digest"])
    assert unconfirmed.exit_code == 5  # not on a terminal and no --yes
    assert _refunds(stack) == before[2]

    # Frozen by an operator: reopening is refused while duplicates are left to refund.
    set_flag(stack, FROZEN, True)
    try:
        early = _runbook(stack, tmp_path, "payment-anomaly", "--reopen-checkout")
        assert early.exit_code == 1, early.output
        assert f"checkout stays frozen: {extra} duplicate charge(s)" in said(early)
        assert [c["action"] for c in latest_plan(tmp_path)["changes"]] == ["refund_intent"] * extra
    finally:
        set_flag(stack, FROZEN, False)

    # The plan applied freezes checkout first, then refunds.
    frozen = _runbook(stack, tmp_path, "payment-anomaly", "--freeze-checkout")
    assert frozen.exit_code == 1, frozen.output
    plan = latest_plan(tmp_path)
    assert [c["action"] for c in plan["changes"]] == ["set_flag"] + ["refund_intent"] * extra
    assert plan["scope"] == {"freeze": True}
    try:
        applied = _runbook(  # the plan carries --freeze-checkout: not given again
            stack, tmp_path, "payment-anomaly", "--apply", "--plan", plan["digest"], "--yes"
        )
        assert applied.exit_code == 0, applied.output
        assert f"duplicate_charges: {extra} → 0" in said(applied)
        assert _refunds(stack) == before[2] + extra
        # Every worker within the flag cache's TTL (2 s).
        hours = iter(range(1, 40))
        held = wait_for(lambda: _frozen(try_hold(stack, next(hours))), timeout_s=5)
        assert held is not None
        assert held.headers["retry-after"] == "60"

        reopen = _runbook(stack, tmp_path, "payment-anomaly", "--reopen-checkout")
        assert reopen.exit_code == 1, reopen.output
        opening = latest_plan(tmp_path)
        assert [(c["subject"], c["detail"]) for c in opening["changes"]] == [
            (f"flag:{FROZEN}", {"enabled": False})
        ]
        reopened = _runbook(
            stack, tmp_path, "payment-anomaly", "--apply", "--plan", opening["digest"], "--yes"
        )
        assert reopened.exit_code == 0, reopened.output
        assert wait_for(lambda: try_hold(stack, next(hours)).status_code == 201, timeout_s=5)
    finally:
        set_flag(stack, FROZEN, False)
    record = next(r for r in reversed(_audit(tmp_path)) if r["plan"] == plan["digest"])
    assert (record["outcome"], record["who"], record["plan"]) == (
        "verified",
        "tester",
        plan["digest"],
    )
    assert record["invariants_before"]["duplicate_charges"] == extra
    assert record["invariants_after"]["duplicate_charges"] == 0
    assert all(c["ok"] for c in record["changes"])

    again = _runbook(stack, tmp_path, "payment-anomaly")
    assert "duplicate_charges 0" in said(again)
    # The approved plan replayed: it has drifted (those intents are refunded now), and even
    # a forced re-refund would reuse the (incident, intent) key: the count cannot move.
    replay = _runbook(
        stack, tmp_path, "payment-anomaly", "--apply", "--plan", plan["digest"], "--yes"
    )
    assert replay.exit_code == 5
    assert "drift" in said(replay)
    assert _refunds(stack) == before[2] + extra
    assert [r["outcome"] for r in _audit(tmp_path)][-1] == "refused"

    # The customer messages come from the audit trail: one per refunded charge.
    letters = runner.invoke(
        app,
        ["comms", "customer-payment-recovery", "--from", str(tmp_path), "--incident", "INC-TEST"],
    )
    assert letters.exit_code == 0, letters.output
    assert letters.output.count("Subject: Your booking") == extra
    for change in plan["changes"][1:]:
        assert f"Refund reference: {change['subject']}" in letters.output


def test_double_booking_keeps_one_per_slot_and_refunds_the_others(
    trouble: Trouble, tmp_path: Path
) -> None:
    stack = trouble.stack
    before = _snapshot(stack)
    found = _runbook(stack, tmp_path, "double-booking")
    assert found.exit_code == 1, found.output
    assert _snapshot(stack) == before
    plan = latest_plan(tmp_path)
    cancelled = {int(c["subject"].split(":")[1]) for c in plan["changes"]}
    assert cancelled <= set(trouble.race_bookings)
    assert len(cancelled) == len(trouble.race_bookings) - 2  # two races, one winner each kept

    applied = _runbook(
        stack,
        tmp_path,
        "double-booking",
        "--apply",
        "--plan",
        plan["digest"],
        "--yes",
        "--max-rows",
        "100",
    )
    assert applied.exit_code == 0, applied.output
    assert "overlapping_bookings: " in said(applied)
    rows = dict(asyncio.run(_db_rows(stack))["bookings"])
    kept = [b for b in trouble.race_bookings if rows[b] in ("held", "confirmed")]
    assert len(kept) == 2
    assert all(rows[b] == "canceled" for b in cancelled)
    assert _runbook(stack, tmp_path, "double-booking").exit_code == 0  # nothing left


def test_drift_between_plan_and_apply_is_refused(trouble: Trouble, tmp_path: Path) -> None:
    stack = trouble.stack
    asyncio.run(_make_race(stack, tmp_path, seed=101))
    assert _runbook(stack, tmp_path, "double-booking").exit_code == 1
    plan = latest_plan(tmp_path)
    # The state moves after the plan was approved: another slot is sold twice.
    asyncio.run(_make_race(stack, tmp_path, seed=202))
    refused = _runbook(
        stack, tmp_path, "double-booking", "--apply", "--plan", plan["digest"], "--yes"
    )
    assert refused.exit_code == 5, refused.output
    assert "drift" in said(refused)
    assert "newly needed: booking:" in said(refused)
    assert _audit(tmp_path)[-1]["outcome"] == "refused"


async def _make_race(stack: Stack, out: Path, seed: int) -> None:
    async with drill_context(stack, out, seed) as ctx:
        await probes.slot_race(ctx, users=6, rounds=1)


def test_a_plan_edited_on_disk_is_refused(trouble: Trouble, tmp_path: Path) -> None:
    stack = trouble.stack
    _runbook(stack, tmp_path, "payment-anomaly")
    path = sorted((tmp_path / "plans").glob("*.json"))[-1]
    data = orjson.loads(path.read_bytes())
    data["incident"] = "INC-OTHER"
    path.write_bytes(orjson.dumps(data))
    done = _runbook(stack, tmp_path, "payment-anomaly", "--apply", "--plan", path.stem, "--yes")
    assert done.exit_code == 3
    assert "was edited" in said(done)


def test_without_a_stack_it_says_so_in_one_line(tmp_path: Path) -> None:
    done = runner.invoke(
        app, ["runbook", "double-booking", "--stack", "nope", "--out", str(tmp_path)]
    )
    assert done.exit_code == 3
    assert "no running embedded stack nope" in said(done)
    assert "Traceback" not in done.output


def test_clusters_link_chains_of_overlaps() -> None:
    def row(i: int, start: int, end: int) -> dict[str, Any]:
        return {
            "id": i,
            "resource_id": 1,
            "starts_at": f"2030-01-01T{start:02d}:00:00+00:00",
            "ends_at": f"2030-01-01T{end:02d}:00:00+00:00",
        }

    found = clusters(
        [row(1, 9, 11), row(2, 10, 12), row(3, 11, 13), row(4, 14, 15), row(5, 15, 16)]
    )
    assert [[r["id"] for r in g] for g in found] == [[1, 2, 3]]


def test_p95_is_interpolated_within_its_bucket_as_prometheus_does() -> None:
    from gameday.runbooks.service import Traffic  # noqa: PLC0415

    seen = Traffic()
    seen.buckets["/r"].update({0.5: 50.0, 1.0: 90.0, 2.5: 100.0, math.inf: 100.0})
    assert seen.p95("/r") == pytest.approx(1.0 + 1.5 * (95 - 90) / 10)
    seen.buckets["/slow"].update({1.0: 0.0, 2.5: 0.0, math.inf: 10.0})
    assert seen.p95("/slow") == 2.5  # beyond the last bound: the last bound
    assert seen.p95("/none") is None
