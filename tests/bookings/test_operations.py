"""The operational commands, run as an operator runs them: ``python -m bookings ...`` in a
subprocess, against real PostgreSQL and MariaDB, the emulator and Redis.

Each command start costs two to three seconds of CPU for its imports, so independent
commands run side by side (``cli_all``), the two databases' steps of one scenario overlap,
and the help texts and the refusals that happen before any connection or logging set-up
(a missing ``--gameday``, production settings) run in-process through Typer's runner, with
the same app and rendering; everything that touches a database runs as a real process.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from typer.testing import CliRunner

from bookings.adapters.constraints import for_dialect
from bookings.cli import app
from bookings.domain.payments import PaymentStatus
from bookings.domain.ports import IntentSnapshot
from bookings.services import schema
from bookings.services.reconcile import Fix, OurPayment, compare
from bookings.settings import DEV_GAMEDAY_PASSWORD
from gameday.stack.processes import free_port
from stripe_emulator import EmulatorServer
from stripe_emulator import Settings as EmulatorSettings
from stripe_emulator.webhooks import DeliverySettings
from tests.bookings.conftest import DIALECTS
from tests.bookings.support import (
    TEST_KEY,
    CliRun,
    ScratchDatabase,
    SmtpSink,
    Stack,
    World,
    cli,
    cli_all,
    cli_env,
    cli_start,
    empty_database,
    make_world,
    run,
    slot,
)

COMMANDS = {
    "serve": ("Serve the API", ["--host", "--port", "--database-url", "--log-level"]),
    "migrate": ("Bring the database schema to the latest revision", ["--database-url"]),
    "seed": ("Create the Game Day drill data", ["--gameday", "--database-url"]),
    "cleanup": ("Remove exactly the rows tagged gameday=true", ["--gameday", "--database-url"]),
    "reconcile": ("Compare our payments with the provider", ["--apply", "--json", "--limit"]),
    "expire-holds": ("Release holds past their expiry now", ["--database-url"]),
}
TABLES = {
    "access_log", "alembic_version", "audit_log", "bookings", "feature_flags",
    "idempotency_keys", "outbox", "payment_transitions", "payments", "resources", "slots",
    "users", "webhook_events",
}  # fmt: skip
SEEDED = (
    "drill data created: 20 customers, 10 premium, 15 guides with 1050 overlapping slots, "
    "1 admin (all tagged gameday=true)"
)


def execute(db: ScratchDatabase, statement: str, **params: Any) -> int:
    async def go() -> int:
        engine = db.engine()
        async with engine.begin() as conn:
            result = await conn.execute(sa.text(statement), params)
        await engine.dispose()
        return int(result.rowcount)

    return run(go())


def table_names(db: ScratchDatabase) -> set[str]:
    async def go() -> set[str]:
        engine = db.engine()
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda c: sa.inspect(c).get_table_names())
        await engine.dispose()
        return set(names)

    return run(go())


def revision(db: ScratchDatabase) -> str | None:
    async def go() -> str | None:
        engine = db.engine()
        found = await schema.current_revision(engine)
        await engine.dispose()
        return found

    return run(go())


def revision_and_missing(db: ScratchDatabase) -> tuple[str | None, list[str]]:
    async def go() -> tuple[str | None, list[str]]:
        engine = db.engine()
        found = await schema.current_revision(engine), await schema.missing_constraints(engine)
        await engine.dispose()
        return found

    return run(go())


async def alembic(db: ScratchDatabase, target: str) -> None:
    """Alembic down to ``base`` or up to ``target``, as the CLI and the service run it."""
    engine = db.engine()
    await (schema.downgrade(engine) if target == "base" else schema.migrate(engine, target))
    await engine.dispose()


def one_clear_line(result: CliRun) -> str:
    """What a failed command said: exactly one line, from us, without a traceback."""
    assert "Traceback" not in result.stderr, result.stderr
    assert len(result.lines) == 1, result.stderr
    line = result.lines[0]
    assert line.startswith("bookings"), line
    return line


def hold_and_pay(stack: Stack, user: int, resource: int, hour: int, key: str) -> dict[str, Any]:
    held = stack.hold(user, resource, slot(days=2, hour=hour))
    assert held.status_code == 201, held.text
    paid = stack.pay(user, held.json()["id"], key)
    assert paid.status_code == 200, paid.text
    body: dict[str, Any] = paid.json()
    return body


@pytest.fixture
def both(databases: dict[str, ScratchDatabase]) -> list[ScratchDatabase]:
    """The session's PostgreSQL and MariaDB databases, emptied, for steps run side by side."""
    for dialect in DIALECTS:
        if dialect not in databases:
            databases[dialect] = ScratchDatabase(dialect).create()
        databases[dialect].wipe()
    return [databases[dialect] for dialect in DIALECTS]


@pytest.fixture
def scratch() -> Iterator[list[ScratchDatabase]]:
    """Databases of the test's own (dropped afterwards), made with ``empty_database`` or
    ``ScratchDatabase.create``."""
    made: list[ScratchDatabase] = []
    yield made
    for db in made:
        db.drop()


# ---------------------------------------------------------------- schema


def test_migrate_builds_an_empty_database_and_alembic_goes_down_and_up(
    scratch: list[ScratchDatabase],
) -> None:
    scratch.extend(empty_database(dialect) for dialect in DIALECTS)
    assert all(table_names(db) == set() for db in scratch)
    scripts = ScriptDirectory.from_config(schema.alembic_config())
    head = scripts.get_current_head()
    assert scripts.get_base() == "0001"
    results = cli_all([(["migrate"], cli_env(database_url=db.url)) for db in scratch])
    for db, result in zip(scratch, results, strict=True):
        assert result.code == 0, result.stderr
        assert result.stdout.strip() == f"schema at revision {head}"
        assert table_names(db) == TABLES
        assert revision_and_missing(db) == (head, [])

        run(alembic(db, "base"))
        assert revision(db) is None
        assert table_names(db) == {"alembic_version"}, db.dialect
        run(alembic(db, "0001"))  # the first revision alone creates the last-line constraints
        assert revision_and_missing(db) == ("0001", [])
        run(alembic(db, "head"))
        assert table_names(db) == TABLES
        assert revision_and_missing(db) == (head, [])


# ---------------------------------------------------------------- drill data


def drill_population(db: ScratchDatabase) -> None:
    """The seeded population is the playbook's, and every row of it is tagged."""
    people = db.query(
        "SELECT role, tier, count(*) FROM users WHERE gameday = true GROUP BY role, tier"
    )
    assert {(role, tier): n for role, tier, n in people} == {
        ("customer", "normal"): 20, ("customer", "premium"): 10, ("guide", "normal"): 15,
        ("admin", "premium"): 1,
    }  # fmt: skip
    assert db.scalar("SELECT count(*) FROM users WHERE gameday = false") == 0
    assert db.scalar("SELECT count(*) FROM resources WHERE gameday = false") == 0
    owners = db.query(
        "SELECT r.owner_user_id, u.role, u.gameday, r.kind FROM resources r "
        "JOIN users u ON u.id = r.owner_user_id WHERE r.gameday = true"
    )
    assert len(owners) == 15
    assert len({owner for owner, *_ in owners}) == 15
    assert {(role, bool(tagged), kind) for _, role, tagged, kind in owners} == {
        ("guide", True, "guide")
    }
    per_resource = db.query("SELECT resource_id, count(*) FROM slots GROUP BY resource_id")
    assert sorted(n for _, n in per_resource) == [70] * 15
    resource = per_resource[0][0]
    spans = db.query(
        "SELECT starts_at, ends_at FROM slots WHERE resource_id = :r ORDER BY starts_at",
        r=resource,
    )
    first_day = [s for s in spans if s[0].date() == spans[0][0].date()]
    assert len(first_day) == 10
    # Consecutive slots overlap: holding one takes its neighbours.
    assert all(b[0] < a[1] for a, b in itertools.pairwise(first_day))


SNAPSHOT = {
    "users": "SELECT id, email, role, tier, password_hash FROM users WHERE gameday = :tagged",
    "resources": "SELECT id, name, owner_user_id FROM resources WHERE gameday = :tagged",
    "slots": "SELECT count(*) FROM slots WHERE resource_id IN "
             "(SELECT id FROM resources WHERE gameday = :tagged)",
    "bookings": "SELECT b.id, b.status FROM bookings b JOIN users u ON u.id = b.user_id "
                "WHERE u.gameday = :tagged",
    "payments": "SELECT p.id, p.status FROM payments p JOIN bookings b ON b.id = p.booking_id "
                "JOIN users u ON u.id = b.user_id WHERE u.gameday = :tagged",
    "outbox": "SELECT o.id, o.recipient FROM outbox o JOIN bookings b ON b.id = o.booking_id "
              "JOIN users u ON u.id = b.user_id WHERE u.gameday = :tagged",
}  # fmt: skip


def snapshot(db: ScratchDatabase, tagged: bool) -> dict[str, list[Any]]:
    """The rows of the drill population (``tagged``) or of everyone else."""
    return {
        name: sorted(map(tuple, db.query(sql, tagged=tagged))) for name, sql in SNAPSHOT.items()
    }


def finish(proc: subprocess.Popen[str], timeout_s: float = 90) -> CliRun:
    out, err = proc.communicate(timeout=timeout_s)
    return CliRun(proc.returncode, out, err)


def book_as_everyone(db: ScratchDatabase, emulator: EmulatorServer, smtp: SmtpSink) -> None:
    """A paid booking of an untagged customer on an untagged resource, and one of a drill
    customer (logged in with the drill password) on a drill guide."""
    world = make_world(db)
    with Stack(db, emulator, smtp) as stack:
        hold_and_pay(stack, world.customers[0], world.resource, 10, "untagged-1")
        drill = {"email": "customer01@gameday.invalid", "password": DEV_GAMEDAY_PASSWORD}
        login = stack.http.post("/auth/token", json=drill)
        assert login.status_code == 200, login.text
        auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
        guide = db.scalar("SELECT min(id) FROM resources WHERE gameday = true")
        when = slot(days=3)
        held = stack.http.post("/bookings", headers=auth, json={
            "resource_id": guide, "starts_at": when[0], "ends_at": when[1]})  # fmt: skip
        assert held.status_code == 201, held.text
        paid = stack.http.post(f"/bookings/{held.json()['id']}/payment",
                               headers={**auth, "Idempotency-Key": "drill-1"},
                               json={"payment_method": "4242424242424242"})  # fmt: skip
        assert paid.status_code == 200, paid.text
        assert stack.wait_for(lambda: len(stack.smtp.messages) == 2)
    smtp.clear()


TAGGED_TRANSITIONS = (
    "SELECT count(*) FROM payment_transitions t JOIN payments p ON p.id = t.payment_id "
    "JOIN bookings b ON b.id = p.booking_id JOIN users u ON u.id = b.user_id "
    "WHERE u.gameday = true"
)


def test_seed_is_idempotent_and_cleanup_removes_exactly_the_drill_rows(
    both: list[ScratchDatabase], emulator: EmulatorServer, smtp: SmtpSink
) -> None:
    envs = [cli_env(database_url=db.url) for db in both]
    for db, seeded in zip(
        both, cli_all([(["seed", "--gameday"], env) for env in envs]), strict=True
    ):
        assert seeded.code == 0, seeded.stderr
        assert seeded.stdout.strip() == SEEDED, seeded.stdout
        drill_population(db)
    # One database's second seed runs while the other gets its bookings.
    before, transitions, again = [], [], []
    for db, env in zip(both, envs, strict=True):
        book_as_everyone(db, emulator, smtp)
        before.append((snapshot(db, True), snapshot(db, False)))
        transitions.append(db.scalar(TAGGED_TRANSITIONS))
        again.append(cli_start(["seed", "--gameday"], env))
    cleanups = []
    for db, env, proc, (tagged, untagged) in zip(both, envs, again, before, strict=True):
        assert all(tagged.values()), tagged
        assert all(untagged.values()), untagged
        result = finish(proc)
        assert result.code == 0, result.stderr
        assert result.stdout.strip() == SEEDED.replace("created", "already present")
        assert (snapshot(db, True), snapshot(db, False)) == (tagged, untagged)
        cleanups.append(cli_start(["cleanup", "--gameday"], env))
    for db, proc, (tagged, untagged), moved in zip(
        both, cleanups, before, transitions, strict=True
    ):
        result = finish(proc)
        assert result.code == 0, result.stderr
        counts = {t: int(n) for n, t in re.findall(r"(\d+) (\w+)", result.stdout)}
        assert counts == {
            "payment_transitions": moved, "payments": 1, "outbox": 1, "bookings": 1,
            "slots": 1050, "resources": 15, "idempotency_keys": 1, "users": 46,
        }, result.stdout  # fmt: skip
        assert (len(tagged["bookings"]), len(tagged["payments"]), len(tagged["outbox"])) == (
            1, 1, 1,
        )  # fmt: skip
        assert moved >= 1
        assert all(not rows or rows == [(0,)] for rows in snapshot(db, True).values())
        assert snapshot(db, False) == untagged
        assert db.scalar("SELECT count(*) FROM users") == 7  # make_world's people
        assert db.scalar("SELECT count(*) FROM idempotency_keys") == 1


# ---------------------------------------------------------------- the command line itself


def test_commands_explain_themselves() -> None:
    """The top-level help from the real program; each command's help in-process (the same
    Typer app and rendering), since every extra interpreter costs ~2 s of imports."""
    top = cli("--help", env={**cli_env(), "COLUMNS": "250"})
    assert top.code == 0, top.stderr
    text = top.stdout
    assert " Usage: python -m bookings [OPTIONS] COMMAND [ARGS]..." in text
    assert "``" not in text  # no reStructuredText markup leaks into the help
    assert any(
        "override the connection URLs. Exit codes: 0 success, 1 divergences found (reconcile), "
        "2 bad input, 3 a dependency was unreachable." in line
        for line in text.splitlines()
    ), text
    for name, (summary, _) in COMMANDS.items():
        [line] = [line for line in text.splitlines() if re.search(rf"│ {name}\s", line)]
        assert summary in line, line
        # The whole first paragraph is on the command's one line (no hard break inside).
        assert line.rstrip(" │").endswith("."), line
    runner = CliRunner()
    for name, (summary, options) in COMMANDS.items():
        result = runner.invoke(app, [name, "--help"], env={"COLUMNS": "100"}, prog_name="bookings")
        assert result.exit_code == 0, result.output
        assert f"Usage: bookings {name} [OPTIONS]" in result.stdout
        assert summary in result.stdout
        assert all(option in result.stdout for option in [*options, "--help"]), result.stdout
        assert "``" not in result.stdout


def test_bad_input_is_refused_in_one_clear_line() -> None:
    dead = free_port()
    oracle, pg_dead, my_dead = cli_all([
        (["seed", "--gameday", "--database-url", "oracle://x"], cli_env()),
        (["migrate", "--database-url", f"postgresql://postgres@127.0.0.1:{dead}/x"], cli_env()),
        (["migrate", "--database-url", f"mysql://root@127.0.0.1:{dead}/x"], cli_env()),
    ])  # fmt: skip
    assert oracle.code == 2
    assert "unsupported database 'oracle'" in one_clear_line(oracle)
    for unreachable in (pg_dead, my_dead):
        assert unreachable.code == 3, unreachable.stderr
        line = one_clear_line(unreachable)
        assert line == "bookings: the database is unreachable (check --database-url)"
    assert all(r.stdout == "" for r in (oracle, pg_dead, my_dead))
    # Refusals that happen before any connection (or logging set-up), in-process.
    runner = CliRunner()
    secrets = {
        "BOOKINGS_JWT_SECRET": "j" * 40, "BOOKINGS_ADMIN_TOKEN": "a" * 24,
        "BOOKINGS_STRIPE_WEBHOOK_SECRET": "whsec_" + "w" * 24, "BOOKINGS_GAMEDAY_PASSWORD": "pw",
    }  # fmt: skip
    production = {"BOOKINGS_ENVIRONMENT": "production"}
    unsafe = {**production, "BOOKINGS_UNSAFE_NO_SAFEGUARDS": "true"}
    cases = [
        (["seed"], {}, "bookings seed: only --gameday data exists; pass --gameday"),
        (["cleanup"], {}, "bookings cleanup: only --gameday data can be removed; pass --gameday"),
        (["serve", "--port", "0"], production, "BOOKINGS_JWT_SECRET, BOOKINGS_ADMIN_TOKEN, "
         "BOOKINGS_STRIPE_WEBHOOK_SECRET, BOOKINGS_GAMEDAY_PASSWORD must be set in "
         "environment=production"),
        (["serve", "--port", "0"], unsafe, "must be set in environment=production"),
        (["serve", "--port", "0"], {**unsafe, **secrets},
         "BOOKINGS_UNSAFE_NO_SAFEGUARDS is for local drills only"),
    ]  # fmt: skip
    # (Commands that get further call logs.configure, which would rewire this process.)
    inherited: dict[str, str | None] = {k: None for k in os.environ if k.startswith("BOOKINGS_")}
    for args, env, expected in cases:
        result = runner.invoke(app, args, env={**inherited, **env}, prog_name="bookings")
        assert result.exit_code == 2, (args, result.output)
        [line] = [line for line in result.stderr.splitlines() if line.strip()]
        assert expected in line, line
        assert result.stdout == ""


# ---------------------------------------------------------------- start-up safeguards


def test_the_safe_service_refuses_a_database_without_constraints_the_unsafe_one_warns(
    scratch: list[ScratchDatabase], emulator: EmulatorServer
) -> None:
    scratch.extend(ScratchDatabase(dialect).create() for dialect in DIALECTS)

    async def drop(db: ScratchDatabase) -> None:
        engine = db.engine()
        await schema.drop_constraints(engine)
        await engine.dispose()

    for db in scratch:
        run(drop(db))
        assert revision_and_missing(db)[1] == [c.name for c in for_dialect(db.dialect)]
    env = {
        db.dialect: cli_env(database_url=db.url, stripe_api_base=emulator.url,
                            stripe_api_key=TEST_KEY, log_level="warning")
        for db in scratch
    }  # fmt: skip
    loose = {"BOOKINGS_UNSAFE_NO_SAFEGUARDS": "1"}
    unsafe = [cli_start(["serve", "--port", "0"], {**env[db.dialect], **loose}) for db in scratch]
    try:
        refused = cli_all([(["serve", "--port", "0"], env[db.dialect]) for db in scratch], 60)
        started = [_first_answer(proc) for proc in unsafe]
    finally:
        logs = []
        for proc in unsafe:
            proc.terminate()
            try:
                logs.append(proc.communicate(timeout=15)[1])
            except subprocess.TimeoutExpired:
                proc.kill()
                logs.append(proc.communicate()[1])
    for db, result in zip(scratch, refused, strict=True):
        assert result.code == 2, result.stderr
        line = one_clear_line(result)
        assert all(c.name in line for c in for_dialect(db.dialect)), line
        assert "bookings migrate" in line
    for full, err in zip(started, logs, strict=True):
        # Ready to serve (Redis may answer late on a loaded machine: "degraded" is fine).
        assert full["status"] in ("ready", "degraded"), full
        assert full["unsafe_variant"] is True
        assert (full["checks"]["database"]["ok"], full["checks"]["schema"]["ok"]) == (True, True)
        loud = [json.loads(line) for line in err.splitlines() if "UNSAFE VARIANT" in line]
        assert [line["level"] for line in loud] == ["critical"], err
        assert "WILL double-book and double-charge" in loud[0]["event"]


def _first_answer(proc: subprocess.Popen[str]) -> dict[str, Any]:
    """``/health/full`` of a ``bookings serve`` process, once it says it is listening."""
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert first.startswith("bookings listening on http://127.0.0.1:"), first
    found: dict[str, Any] = httpx.get(first.split()[-1] + "/health/full", timeout=10).json()
    return found


# ---------------------------------------------------------------- reconciliation


@pytest.fixture
def second_emulator() -> Iterator[EmulatorServer]:
    """An emulator of the test's own, so that two databases' bookings (whose ids may be
    equal) are reconciled side by side without seeing each other's intents."""
    settings = EmulatorSettings(delivery=DeliverySettings(timeout_s=2.0, retry_base_s=60.0))
    with EmulatorServer(settings) as server:
        yield server


def paid_pair(stack: Stack, db: ScratchDatabase, world: World) -> list[dict[str, Any]]:
    """Two paid bookings, with the provider's own events applied (so that nothing mends the
    damage a test does afterwards)."""
    paid = [hold_and_pay(stack, world.customers[i], world.resource, 10 + 4 * i, f"rec-{i}")
            for i in range(2)]  # fmt: skip
    assert stack.wait_for(lambda: db.scalar(
        "SELECT count(*) FROM webhook_events WHERE type = 'payment_intent.succeeded' "
        "AND status = 'processed'") == 2, timeout_s=30)  # fmt: skip
    return paid


def divergences(result: CliRun) -> set[tuple[Any, ...]]:
    """The divergences of a ``reconcile --json`` run."""
    return {(d["kind"], d["booking_id"], d["intent_id"], d["ours"], d["theirs"], d["fixed"])
            for d in json.loads(result.stdout)["divergences"]}  # fmt: skip


def mended_in_place(db: ScratchDatabase, emu: EmulatorServer, lagging: Any, doubled: Any,
                    extra: str) -> None:  # fmt: skip
    """After ``--apply``: the duplicate refunded at the provider, our lagging payment settled,
    both bookings still confirmed."""
    refunds = [(r["payment_intent"], r["amount"]) for r in emu.ledger()["refunds"]]
    assert refunds == [(extra, doubled["amount_cents"])]
    paid = {lagging["booking_id"]: "succeeded", doubled["booking_id"]: "succeeded"}
    assert dict(db.query("SELECT booking_id, status FROM payments")) == paid
    booked = {lagging["booking_id"]: "confirmed", doubled["booking_id"]: "confirmed"}
    assert dict(db.query("SELECT id, status FROM bookings")) == booked
    assert db.query(
        "SELECT from_status, to_status FROM payment_transitions WHERE source = 'reconcile'"
    ) == [("requires_payment_method", "succeeded")]


def test_reconcile_finds_real_divergences_and_mends_them(
    both: list[ScratchDatabase], emulator: EmulatorServer, second_emulator: EmulatorServer,
    smtp: SmtpSink,
) -> None:  # fmt: skip
    """The full story on PostgreSQL (clean, damaged: text and JSON, mended, clean again);
    on MariaDB, side by side, the damage found and mended by one ``--apply``."""
    cases = []
    clean: list[subprocess.Popen[str]] = []
    for db, emu in zip(both, [emulator, second_emulator], strict=True):
        with Stack(db, emu, smtp) as stack:
            lagging, doubled = paid_pair(stack, db, make_world(db))
        env = cli_env(database_url=db.url, stripe_api_base=emu.url, stripe_api_key=TEST_KEY)
        cases.append((db, emu, stack.provider, env, lagging, doubled))
        if not clean:  # checked while the next database gets its bookings
            clean.append(cli_start(["reconcile"], env))
    first = finish(clean[0])
    assert first.code == 0, first.stderr
    assert "2 intents, 2 payments checked" in first.stdout
    assert "no divergences" in first.stdout
    extras: list[str] = []
    for db, _, provider, _, lagging, doubled in cases:
        # (i) our record falls behind the provider; (ii) the provider charges one booking twice.
        assert execute(db, "UPDATE payments SET status = 'requires_payment_method' "
                           "WHERE booking_id = :b", b=lagging["booking_id"]) == 1  # fmt: skip
        charged = provider.v1.payment_intents.create(params={
            "amount": doubled["amount_cents"], "currency": doubled["currency"],
            "metadata": {"booking_id": str(doubled["booking_id"])},
            "payment_method": "pm_card_visa", "confirm": True,
        })  # fmt: skip
        assert charged.status == "succeeded"
        extras.append(charged.id)
    expected = [
        {("paid_not_recorded", lagging["booking_id"], lagging["payment_intent"],
          "requires_payment_method", "succeeded", False),
         ("duplicate_charge", doubled["booking_id"], extra, None, "succeeded", False)}
        for (*_, lagging, doubled), extra in zip(cases, extras, strict=True)
    ]  # fmt: skip
    (pg, pg_emu, _, pg_env, lagging, doubled), maria = cases[0], cases[1]
    text, as_json, maria_mended = cli_all([
        (["reconcile"], pg_env), (["reconcile", "--json"], pg_env),
        (["reconcile", "--apply", "--json"], maria[3]),
    ])  # fmt: skip
    assert (text.code, as_json.code) == (1, 1), (text.stderr, as_json.stderr)
    report = json.loads(as_json.stdout)
    assert (report["intents_seen"], report["payments_seen"]) == (3, 2)
    assert divergences(as_json) == expected[0]
    assert pg_emu.ledger()["refunds"] == []
    assert "…" not in text.stdout  # nothing cropped, at 100 columns
    for kind, booking in (("paid_not_recorded", lagging), ("duplicate_charge", doubled)):
        row = next(line for line in text.stdout.splitlines() if kind in line)
        assert f" {booking['booking_id']} " in row, text.stdout
    assert maria_mended.code == 0, maria_mended.stderr
    assert divergences(maria_mended) == {(*d[:-1], True) for d in expected[1]}
    mended_in_place(maria[0], maria[1], maria[4], maria[5], extras[1])
    pg_mended = cli("reconcile", "--apply", "--json", env=pg_env)
    assert pg_mended.code == 0, pg_mended.stderr
    assert divergences(pg_mended) == {(*d[:-1], True) for d in expected[0]}
    mended_in_place(pg, pg_emu, lagging, doubled, extras[0])
    # Normal paid bookings and a mended duplicate: nothing left to report.
    after = cli("reconcile", env=pg_env)
    assert after.code == 0, after.stdout
    assert "3 intents, 2 payments checked" in after.stdout
    assert "no divergences" in after.stdout


def snap(intent: str, status: str = "succeeded", *, refunded: bool = False) -> IntentSnapshot:
    return IntentSnapshot(intent, PaymentStatus(status), 9000, {"booking_id": "1"},
                          refunded=refunded)  # fmt: skip


def ours(
    intent: str | None, status: str = "succeeded", booking: str = "confirmed", *,
    needs_refund: bool = False, payment_id: int = 10,
) -> OurPayment:  # fmt: skip
    return OurPayment(payment_id, 1, intent, status, booking, needs_refund)


def kinds(found: list[tuple[Any, Fix | None]]) -> list[tuple[str, str | None, str | None]]:
    return [(d.kind, d.intent_id, fix.action if fix else None) for d, fix in found]


def test_compare_is_quiet_when_both_sides_agree() -> None:
    assert compare(1, [snap("pi_a")], [ours("pi_a")]) == []
    # An open intent with an open payment, and a refund both sides know of, are fine too.
    assert compare(1, [snap("pi_a", "requires_action")], [ours("pi_a", "requires_action",
                                                                  "held")]) == []  # fmt: skip
    assert compare(1, [snap("pi_a", refunded=True)], [ours("pi_a", "refunded", "canceled")]) == []
    assert compare(1, [], []) == []


def test_compare_finds_each_kind_of_divergence() -> None:
    duplicate = compare(1, [snap("pi_x"), snap("pi_a")], [ours("pi_a")])
    assert kinds(duplicate) == [("duplicate_charge", "pi_x", "refund")]
    assert duplicate[0][1] == Fix("refund", snap("pi_x"), None)
    assert kinds(compare(1, [snap("pi_x")], [])) == [("untracked_charge", "pi_x", "refund")]
    lagging = compare(1, [snap("pi_a")], [ours("pi_a", "requires_payment_method", "held")])
    assert kinds(lagging) == [("paid_not_recorded", "pi_a", "settle")]
    assert lagging[0][1] == Fix("settle", snap("pi_a"), 10)
    refunded = compare(1, [snap("pi_a", refunded=True)], [ours("pi_a")])
    assert kinds(refunded) == [("paid_not_recorded", "pi_a", "settle")]
    assert (refunded[0][0].ours, refunded[0][0].theirs) == ("succeeded", "refunded")
    unbooked = compare(1, [snap("pi_a")], [ours("pi_a", booking="expired")])
    assert kinds(unbooked) == [("paid_not_booked", "pi_a", "settle")]
    assert compare(1, [snap("pi_a")], [ours("pi_a", booking="expired", needs_refund=True)]) == []


def test_compare_reports_recorded_not_paid_without_a_fix() -> None:
    unknown = compare(1, [], [ours("pi_gone")])
    assert kinds(unknown) == [("recorded_not_paid", "pi_gone", None)]
    assert (unknown[0][0].ours, unknown[0][0].theirs) == ("succeeded", None)
    # A listing cut short by the limit proves nothing about an intent it did not reach.
    assert compare(1, [], [ours("pi_gone")], listing_complete=False) == []
    failed = compare(1, [snap("pi_a", "requires_payment_method")], [ours("pi_a")])
    assert kinds(failed) == [("recorded_not_paid", "pi_a", None)]
    assert failed[0][0].theirs == "requires_payment_method"


def test_two_databases_on_one_provider_account_never_share_an_intent(
    emulator: EmulatorServer, smtp: SmtpSink
) -> None:
    """Payment 1 of one database and payment 1 of another (a reset test database, staging
    beside a test run) once derived the same provider key from the id alone: the provider
    answered the first database's PaymentIntent to the second, or refused with a 500."""
    first, second = ScratchDatabase("postgresql").create(), ScratchDatabase("postgresql").create()
    try:
        answers = []
        for db in (first, second):
            world = make_world(db)
            with Stack(db, emulator, smtp) as stack:
                answers.append(hold_and_pay(stack, world.customers[0], world.resource, 10, "k"))
        assert answers[0]["payment_id"] == answers[1]["payment_id"]  # the same id in each
        assert answers[0]["payment_intent"] != answers[1]["payment_intent"]
        assert all(a["status"] == "succeeded" for a in answers)
    finally:
        first.drop()
        second.drop()
