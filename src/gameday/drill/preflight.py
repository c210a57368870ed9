"""The drill's pre-flight (playbook 000 Part 1.5): is the target fit to be broken on purpose?

Healthy instances, seeded drill data, webhook signatures really verified, the safeguard
flags on, a database snapshot to compare or restore from, and the stop condition armed.
A failed check aborts the drill before any fault — except the flags, which are reported
(a team may drill with one off on purpose, and the scenarios will show what that costs).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from gameday.alerts.prom import AlertmanagerClient, PromError, PrometheusClient
from gameday.drill.context import DrillContext, ProbeError
from gameday.verdict import Verdict

Check = tuple[str, bool | None, str]
NOT_BLOCKING = frozenset({"feature flags", "monitoring reachable"})


async def run_preflight(
    ctx: DrillContext, out: Path, stop_condition: str, prometheus_url: str
) -> list[dict[str, Any]]:
    checks: list[dict[str, Any]] = []

    def record(name: str, ok: bool | None, detail: str) -> None:
        verdict = Verdict.UNKNOWN if ok is None else (Verdict.PASS if ok else Verdict.FAIL)
        checks.append({"check": name, "verdict": verdict.value, "detail": detail})

    record(*await _healthy(ctx))
    record(*await _seeded(ctx))
    record(*await _signatures_on(ctx))
    record(*await _flags(ctx))
    record(*await asyncio.to_thread(_monitoring, prometheus_url, ctx.target.alertmanager_url))
    if ctx.target.embedded:
        record(*await asyncio.to_thread(_snapshot_database, ctx.target.database_url, out))
    else:  # a team's real data does not belong in a report folder people attach to PRs
        record("database snapshot", None, "not taken for an external target: use your backups")
    record("stop condition armed", True, stop_condition)
    return checks


def blocking_failures(checks: list[dict[str, Any]]) -> list[str]:
    return [
        f"{c['check']}: {c['detail']}"
        for c in checks
        if c["verdict"] == "fail" and c["check"] not in NOT_BLOCKING
    ]


async def _healthy(ctx: DrillContext) -> Check:
    async def ready(where: str) -> bool:
        with contextlib.suppress(Exception):
            answer = await ctx.shop.client(where).request(
                "GET", ctx.target.paths.ready, timeout_s=5
            )
            return answer.status == 200
        return False

    names = list(ctx.shop.clients)
    states = await asyncio.gather(*(ready(n) for n in names))
    down = [n for n, ok in zip(names, states, strict=True) if not ok]
    return ("target healthy", not down,
            "every instance ready" if not down else f"not ready: {', '.join(down)}")  # fmt: skip


async def _seeded(ctx: DrillContext) -> Check:
    try:
        session = await ctx.session(process="preflight")
        ctx.resources = (await ctx.shop.resources(session))[:50]
    except ProbeError as error:
        return "drill data seeded", False, str(error)
    return ("drill data seeded", bool(ctx.resources),
            f"{len(ctx.resources)} bookable resources; drill users log in")  # fmt: skip


async def _signatures_on(ctx: DrillContext) -> Check:
    payload = b'{"id": "evt_gameday_preflight", "object": "event", "type": "ping"}'
    bad = ctx.shop.sign(payload, secret="whsec_gameday_wrong")  # noqa: S106 - wrong on purpose
    try:
        answer = await ctx.shop.client().request(
            "POST", ctx.target.paths.webhook, body=payload, timeout_s=5,
            headers={"stripe-signature": bad, "content-type": "application/json"},
        )  # fmt: skip
    except Exception as error:
        return "webhook signatures verified", None, f"no answer: {type(error).__name__}"
    ok = 400 <= answer.status < 500
    return "webhook signatures verified", ok, f"a forged signature got {answer.status}"


async def _flags(ctx: DrillContext) -> Check:
    if not ctx.target.admin_token:
        return "feature flags", None, "no admin token in the profile: flags not read"
    try:
        answer = await ctx.shop.client().request(
            "GET", ctx.target.paths.flags, timeout_s=5,
            headers={"x-admin-token": ctx.target.admin_token},
        )  # fmt: skip
        flags = answer.json()
    except Exception as error:
        return "feature flags", None, f"not read: {type(error).__name__}"
    if answer.status != 200 or not isinstance(flags, dict):
        return "feature flags", None, f"not read: {answer.status}"
    off = sorted(n for n in ctx.target.safeguard_flags if flags.get(n) is not True)
    return ("feature flags", not off,
            "every safeguard flag on" if not off else f"off: {', '.join(off)}")  # fmt: skip


def _monitoring(prometheus_url: str, alertmanager_url: str) -> Check:
    """Not blocking: without monitoring the drill still judges requests and invariants, and
    every expected alert then fails its scenario, which is the finding."""
    if not prometheus_url:
        return "monitoring reachable", None, "no Prometheus: snapshots and alerts not checked"
    problems = []
    for client in (PrometheusClient, AlertmanagerClient):
        url = prometheus_url if client is PrometheusClient else alertmanager_url
        if not url:
            continue
        try:
            with client(url) as api:
                if not api.ready():
                    problems.append(f"{api.what} not ready")
        except (PromError, ValueError) as error:
            problems.append(str(error))
    return ("monitoring reachable", not problems,
            "; ".join(problems) or "Prometheus ready" + (" and Alertmanager" if alertmanager_url
                                                          else ""))  # fmt: skip


def _snapshot_database(url: str, out: Path) -> Check:
    """A ``pg_dump`` of the target database next to the journal (mode 0600: it holds the
    drill's data), so what the drill changed can be compared or restored."""
    if not url:
        return "database snapshot", None, "no database URL in the profile"
    if not url.startswith(("postgresql", "postgres")):
        return "database snapshot", None, "snapshots are taken for PostgreSQL only"
    pg_dump = shutil.which("pg_dump") or next(
        (str(p) for p in sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_dump"))), None
    )
    if pg_dump is None:
        return "database snapshot", None, "pg_dump not found"
    dump = out / "snapshot.sql"
    dump.touch(mode=0o600)
    dump.chmod(0o600)
    parts = urlsplit(url.replace("+asyncpg", ""))
    env = {**os.environ}
    if parts.password:  # never on the command line, where ps shows it
        env["PGPASSWORD"] = unquote(parts.password)
        netloc = f"{parts.username}@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        parts = parts._replace(netloc=netloc)
    done = subprocess.run(  # noqa: S603 - pg_dump with our own URL
        [pg_dump, "--no-owner", "-f", str(dump), urlunsplit(parts)],
        capture_output=True, text=True, timeout=60, check=False, env=env,
    )  # fmt: skip
    if done.returncode != 0:
        return "database snapshot", False, (done.stderr.strip().splitlines() or ["failed"])[-1]
    return "database snapshot", True, f"{dump.name}: {dump.stat().st_size // 1024} KiB"
