"""``db-connections`` (playbook 000 Part 5, "database connection exhaustion").

Diagnosis: the target database's sessions by state, sessions waiting on a lock and who
holds it, the longest-running queries, transactions left idle (a client that began and
went away keeps its locks and a pool slot), and the service's own pool use from its
metrics. PostgreSQL is read from ``pg_stat_activity``; MariaDB from the process list and
``innodb_trx``.

Resolution: end the sessions idle in a transaction for longer than ``--older-than``. A
session is named by its id *and* the moment its transaction began, so a reused id is never
ended by an old plan: it would not match the plan's digest.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from gameday.runbooks.context import RunbookError, Runtime, total
from gameday.runbooks.model import Change, Diagnosis, Finding

_PG = """
SELECT pid, usename AS who, application_name AS app, state, wait_event_type AS wait,
       xact_start, backend_start,
       EXTRACT(EPOCH FROM (now() - xact_start)) AS xact_s,
       EXTRACT(EPOCH FROM (now() - query_start)) AS query_s,
       pg_blocking_pids(pid) AS blocked_by, left(query, 200) AS query
FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'
"""
_MARIADB = """
SELECT p.ID AS pid, p.USER AS who, p.COMMAND AS command, p.TIME AS query_s, p.STATE AS wait,
       t.trx_started AS xact_start, TIMESTAMPDIFF(SECOND, t.trx_started, NOW()) AS xact_s,
       t.trx_state AS trx_state,
       LEFT(p.INFO, 200) AS query
FROM information_schema.PROCESSLIST p
LEFT JOIN information_schema.INNODB_TRX t ON t.trx_mysql_thread_id = p.ID
WHERE p.DB = DATABASE() AND p.ID <> CONNECTION_ID()
"""
_MARIADB_WAITS = """
SELECT r.trx_mysql_thread_id AS waiting, b.trx_mysql_thread_id AS blocking
FROM information_schema.INNODB_LOCK_WAITS w
JOIN information_schema.INNODB_TRX r ON r.trx_id = w.requesting_trx_id
JOIN information_schema.INNODB_TRX b ON b.trx_id = w.blocking_trx_id
"""
_LIMIT = 10


def _state(row: Any, postgres: bool) -> str:
    if postgres:
        return str(row["state"] or "unknown")
    if row.get("trx_state") == "LOCK WAIT":
        return "waiting on a lock"
    if row["command"] == "Sleep":
        return "idle in transaction" if row["xact_start"] is not None else "idle"
    return "active"


async def _pool(rt: Runtime) -> str:
    samples = await rt.metrics()
    if samples is None:
        return "pool use: /metrics not readable"
    found = {
        name: total(samples, name) for name in ("bookings_db_pool_in_use", "bookings_db_pool_size")
    }
    size = found.get("bookings_db_pool_size")
    if not size:
        return "pool use: the service exports no pool metrics"
    used = found.get("bookings_db_pool_in_use", 0.0)
    return f"pool use of the answering instance: {used:g}/{size:g} ({100 * used / size:.0f} %)"


async def _rows(rt: Runtime) -> list[dict[str, Any]]:
    """Sessions with ``blocked_by`` (the ids holding what each waits for) on both engines."""
    if rt.dialect == "postgresql":
        return [dict(r) for r in await rt.rows(_PG)]
    rows = [dict(r) for r in await rt.rows(_MARIADB)]
    blocked: dict[int, list[int]] = {}
    for w in await rt.rows(_MARIADB_WAITS):
        blocked.setdefault(int(w["waiting"]), []).append(int(w["blocking"]))
    for r in rows:
        r["blocked_by"] = blocked.get(int(r["pid"]), [])
        if r.get("trx_state") == "LOCK WAIT" and not r["blocked_by"]:
            r["blocked_by"] = [0]  # waiting; the holder was not reported
    return rows


async def diagnose(rt: Runtime) -> Diagnosis:
    postgres = rt.dialect == "postgresql"
    rows = await _rows(rt)
    states = Counter(_state(r, postgres) for r in rows)
    waiting = [r for r in rows if r["blocked_by"]]
    holders = sorted({pid for r in waiting for pid in r["blocked_by"] if pid})
    active = sorted(
        (r for r in rows if _state(r, postgres) == "active"),
        key=lambda r: -float(r["query_s"] or 0),
    )
    limit = rt.older_than_s
    idle = [
        r
        for r in rows
        if _state(r, postgres) == "idle in transaction" and float(r["xact_s"] or 0) >= limit
    ]
    changes = [
        Change(
            "end_session",
            f"session:{r['pid']}",
            f"idle in a transaction since {r['xact_start']}",
            rows=1,
            detail={"pid": int(r["pid"]), "xact_start": str(r["xact_start"])},
        )
        for r in idle
    ]
    findings = []
    if idle:
        findings.append(
            Finding(
                f"{len(idle)} session(s) idle in a transaction for over {limit:g} s",
                [
                    {
                        "pid": int(r["pid"]),
                        "who": r["who"],
                        "idle_s": round(float(r["xact_s"] or 0)),
                        "last_query": r["query"],
                    }
                    for r in idle[:_LIMIT]
                ],
            )
        )
    if waiting:
        findings.append(
            Finding(
                f"{len(waiting)} session(s) waiting on a lock",
                [
                    {
                        "pid": int(r["pid"]),
                        "blocked_by": list(r["blocked_by"] or []),
                        "query": r["query"],
                    }
                    for r in waiting[:_LIMIT]
                ],
            )
        )
    notes = [
        "sessions by state: " + ", ".join(f"{k} {v}" for k, v in sorted(states.items())),
        await _pool(rt),
    ]
    if holders:
        notes.append("lock holders: " + ", ".join(map(str, holders)))
    notes += [
        f"longest running: pid {r['pid']} {float(r['query_s'] or 0):.1f} s: {r['query']}"
        for r in active[:3]
    ]
    return Diagnosis(
        "db-connections",
        [
            "sessions by state",
            "sessions waiting on locks and their holders",
            "longest-running queries",
            f"transactions idle for over {limit:g} s",
            "the service's pool use",
        ],
        findings,
        changes,
        {c.subject: c.detail["xact_start"] for c in changes} | {"older_than_s": limit},
        {"idle_in_transaction": len(idle), "waiting_on_locks": len(waiting)},
        notes,
    )


async def end_session(rt: Runtime, change: Change, _incident: str) -> str:
    if change.action != "end_session":
        raise RunbookError(f"db-connections cannot {change.action}")
    pid = int(change.detail["pid"])
    if rt.dialect == "postgresql":
        # Only if it is still the same transaction the plan named.
        found = await rt.rows(
            "SELECT pg_terminate_backend(pid) AS ended FROM pg_stat_activity "
            "WHERE pid = :pid AND xact_start = :start",
            pid=pid,
            start=datetime.fromisoformat(change.detail["xact_start"]),
        )
        if not found or not found[0]["ended"]:
            raise RunbookError(f"session {pid} is gone or in another transaction now")
        return f"session {pid} ended"
    await rt.execute(f"KILL {pid}")  # an integer: KILL takes no bound parameter
    return f"session {pid} ended"
