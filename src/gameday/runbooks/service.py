"""Runbooks read from the service itself: ``redis-down``, ``error-spike``, ``slow-responses``.

They read ``/health/full`` (dependency checks, breakers, flags, pool) and ``/metrics`` of
every instance: request counters are scraped twice, a few seconds apart, on each instance,
so rates and error ratios describe *now* rather than everything since the process started
(and deltas are never taken across two different instances behind a load balancer).
``error-spike`` reads the flags through the admin API, as stored; ``redis-down`` takes them
from ``/health/full``, which answers even when Redis's absence fails other routes closed.

Resolutions are feature flags, flipped through the admin API (the service audits them):
``redis-down`` turns the Redis fallback on so the critical path survives; ``error-spike``
turns back on every safeguard flag found off (a recent flag change is the usual cause).
``slow-responses`` only diagnoses: its remedies (a query, a pool size) are for a human.
"""

from __future__ import annotations

import asyncio
import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx

from gameday.drill.target import SAFEGUARD_FLAGS
from gameday.runbooks.context import RunbookError, Runtime
from gameday.runbooks.model import Change, Diagnosis, Finding

FALLBACK = "REDIS_OPTIONAL_FALLBACK"
_RECENT = timedelta(hours=1)
_LIMIT = 10


@dataclass
class Traffic:
    """Per route over the window, summed over the instances."""

    requests: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    errors: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    buckets: dict[str, dict[float, float]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(float))
    )

    def p95(self, route: str) -> float | None:
        """The 95th percentile (seconds), estimated as Prometheus' ``histogram_quantile``
        does: linear within the bucket that holds it; the highest finite bound if that
        bucket is ``+Inf``."""
        cumulative = sorted(self.buckets.get(route, {}).items())
        total = cumulative[-1][1] if cumulative else 0
        if total <= 0:
            return None
        rank, lower, below = 0.95 * total, 0.0, 0.0
        for upper, count in cumulative:
            if count >= rank:
                if math.isinf(upper):
                    return lower
                return lower + (upper - lower) * (rank - below) / max(count - below, 1e-9)
            lower, below = upper, count
        return lower  # pragma: no cover - the +Inf bucket holds every observation


def _counters(samples: list[Any]) -> dict[tuple[str, str, str], float]:
    """(series, route, status or le) → value, for requests and the latency histogram."""
    found: dict[tuple[str, str, str], float] = {}
    for s in samples:
        if s.name == "bookings_http_requests_total":
            found["req", s.labels.get("route", "?"), s.labels.get("status", "?")] = s.value
        elif s.name == "bookings_http_request_duration_seconds_bucket":
            found["le", s.labels.get("route", "?"), s.labels.get("le", "+Inf")] = s.value
    return found


async def traffic(rt: Runtime) -> tuple[Traffic, list[str]]:
    """What the instances served during ``rt.window_s``; the instances not readable."""
    window_s = rt.window_s
    urls = list(rt.target.instances) or [rt.target.service_url]
    first = await asyncio.gather(*(rt.metrics(u) for u in urls))
    await asyncio.sleep(window_s)
    second = await asyncio.gather(*(rt.metrics(u) for u in urls))
    seen = Traffic()
    missing = []
    for url, a, b in zip(urls, first, second, strict=True):
        if a is None or b is None:
            missing.append(url)
            continue
        before, after = _counters(a), _counters(b)
        for (kind, route, label), value in after.items():
            delta = max(0.0, value - before.get((kind, route, label), 0.0))
            if kind == "req":
                seen.requests[route] += delta
                if label.startswith("5"):
                    seen.errors[route] += delta
            else:
                seen.buckets[route][math.inf if label == "+Inf" else float(label)] += delta
    return seen, missing


async def health(rt: Runtime) -> dict[str, Any]:
    try:
        answer = await rt.http.get("/health/full")
    except httpx.HTTPError as error:
        raise RunbookError(f"service {rt.target.service_url}: {error}") from None
    try:
        body: dict[str, Any] = answer.json()
    except ValueError:
        raise RunbookError(f"/health/full answered {answer.status_code}, not JSON") from None
    return body


async def current_flags(rt: Runtime) -> dict[str, bool]:
    """The flags as stored: the admin API reads them from the database, where a worker's
    own view (as in ``/health/full``) may be a flag-cache TTL old."""
    found = await rt.admin("GET", "/admin/flags", what="reading the feature flags")
    return {str(k): bool(v) for k, v in found.items()}


def flag_change(name: str, enabled: bool, why: str) -> Change:
    return Change("set_flag", f"flag:{name}", why, rows=1, detail={"enabled": enabled})


async def set_flag(rt: Runtime, change: Change, _incident: str) -> str:
    if change.action != "set_flag":
        raise RunbookError(f"cannot {change.action} here")
    name, enabled = change.subject.removeprefix("flag:"), bool(change.detail["enabled"])
    found = await rt.admin(
        "PUT", f"/admin/flags/{name}", json={"enabled": enabled}, what=f"flag {name}"
    )
    return f"{name} = {found.get(name)}"


# -- redis-down -------------------------------------------------------------------------------


async def diagnose_redis(rt: Runtime) -> Diagnosis:
    body = await health(rt)
    check = (body.get("checks") or {}).get("redis") or {}
    breaker = (body.get("breakers") or {}).get("redis", "?")
    flags = body.get("flags") or {}
    down = not check.get("ok", False) or breaker == "open"
    fallback = bool(flags.get(FALLBACK, False))
    findings, changes = [], []
    if down:
        findings.append(
            Finding("Redis is unreachable from the service", [{"check": check, "breaker": breaker}])
        )
    if not fallback:
        findings.append(
            Finding(
                f"{FALLBACK} is off: without Redis, rate limiting, caching "
                "and flags fail closed and the critical path with them"
            )
        )
        changes.append(flag_change(FALLBACK, True, "let the critical path run without Redis"))
    notes = [f"service status: {body.get('status')}; Redis breaker {breaker}"]
    if down:
        notes.append(
            "restore Redis (its process, memory, network); the service reconnects "
            "by itself, no restart needed"
        )
    return Diagnosis(
        "redis-down",
        ["Redis health from the service", "the Redis breaker", f"{FALLBACK}"],
        findings,
        changes,
        {"fallback": fallback},
        {"redis_down": int(down), "fallback_off": int(not fallback)},
        notes,
    )


# -- error-spike ------------------------------------------------------------------------------


async def _recent_flags(rt: Runtime) -> list[dict[str, Any]]:
    since = rt.db_now() - _RECENT
    rows = await rt.rows(
        "SELECT name, enabled, updated_at, updated_by FROM feature_flags "
        "WHERE updated_at > :since ORDER BY updated_at DESC",
        since=since,
    )
    return [dict(r) | {"updated_at": str(r["updated_at"])} for r in rows]


async def diagnose_errors(rt: Runtime) -> Diagnosis:
    seen, missing = await traffic(rt)
    body = await health(rt)
    flags = await current_flags(rt)
    recent = await _recent_flags(rt)
    erroring = {
        r: seen.errors[r] / n
        for r, n in seen.requests.items()
        if n and seen.errors.get(r, 0) / n >= 0.05
    }
    off = [name for name in SAFEGUARD_FLAGS if name in flags and not flags[name]]
    findings = []
    if erroring:
        findings.append(
            Finding(
                f"{len(erroring)} route(s) answering 5xx to 5 % or more of "
                f"requests in the last {rt.window_s:g} s",
                [
                    {"route": r, "error_rate": round(v, 3), "requests": seen.requests[r]}
                    for r, v in sorted(erroring.items(), key=lambda kv: -kv[1])
                ][:_LIMIT],
            )
        )
    if off:
        findings.append(Finding(f"safeguard flag(s) off: {', '.join(off)}", recent[:_LIMIT]))
    unhealthy = {
        k: v
        for k, v in (body.get("checks") or {}).items()
        if isinstance(v, dict) and not v.get("ok")
    }
    notes = [f"dependencies: {unhealthy or 'all answering'}; breakers {body.get('breakers')}"]
    notes += [
        f"flag {f['name']} set to {f['enabled']} by {f['updated_by']} at {f['updated_at']}"
        for f in recent[:_LIMIT]
    ]
    if missing:
        notes.append(f"metrics not readable from: {', '.join(missing)}")
    total = sum(seen.requests.values())
    notes.append(
        f"{total:.0f} request(s) in the window, {sum(seen.errors.values()):.0f} answered 5xx"
    )
    changes = [
        flag_change(
            name,
            True,
            "safeguard off"
            + (" since a recent change" if any(f["name"] == name for f in recent) else ""),
        )
        for name in off
    ]
    return Diagnosis(
        "error-spike",
        [
            "5xx ratio per route now (two scrapes per instance)",
            "dependency health",
            "recent feature-flag changes",
            "safeguard flags",
        ],
        findings,
        changes,
        {f"flag:{n}": False for n in off},
        {"routes_erroring": len(erroring), "safeguards_off": len(off)},
        notes,
    )


# -- slow-responses ---------------------------------------------------------------------------


async def diagnose_latency(rt: Runtime) -> Diagnosis:
    seen, missing = await traffic(rt)
    body = await health(rt)
    slow = {r: p for r in seen.requests if (p := seen.p95(r)) is not None and p > 1.5}
    pool = body.get("db_pool") or {}
    waits = await rt.rows(
        "SELECT COUNT(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        if rt.dialect == "postgresql"
        else "SELECT COUNT(*) AS n FROM information_schema.INNODB_TRX WHERE trx_state = 'LOCK WAIT'"
    )
    findings = []
    if slow:
        findings.append(
            Finding(
                f"{len(slow)} route(s) with p95 over 1.5 s in the last {rt.window_s:g} s",
                [{"route": r, "p95_s": p} for r, p in sorted(slow.items())][:_LIMIT],
            )
        )
    lock_waits = int(waits[0]["n"]) if waits else 0
    notes = [
        f"DB pool of the answering instance: {pool.get('in_use')}/{pool.get('size')}"
        + (f" (public traffic may use {share})" if (share := pool.get("public_share")) else ""),
        f"sessions waiting on locks: {lock_waits} (gameday runbook db-connections for detail)",
        f"breakers: {body.get('breakers')}",
        "remedies are for a human: the slow query, an index, the pool size, or shed load",
    ]
    if missing:
        notes.append(f"metrics not readable from: {', '.join(missing)}")
    return Diagnosis(
        "slow-responses",
        ["p95 per route now", "pool use", "lock waits", "breakers"],
        findings,
        [],
        {},
        {"slow_routes": len(slow)},
        notes,
    )
