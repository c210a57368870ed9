"""Liveness, readiness, a full report, and Prometheus metrics.

Readiness requires the database (and, on the safe service, its last-line constraints):
without it the worker can serve nothing. Redis and the payment provider are reported, and
make the status ``degraded``, but do not take the worker out of rotation — search and
holds still work without them, and a provider outage must not become a full outage.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bookings.api.deps import Services
from bookings.bootstrap import Container

router = APIRouter(tags=["health"])
_CHECK_TIMEOUT_S = 1.0
_PROVIDER_CACHE_S = 5.0


async def _check(probe: Callable[[], Awaitable[object]]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(_CHECK_TIMEOUT_S):
            await probe()
    except Exception as error:
        return {"ok": False, "error": type(error).__name__}
    return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 1)}


_provider_seen: dict[int, tuple[float, dict[str, Any]]] = {}


async def _provider(c: Container) -> dict[str, Any]:
    """Cached for a few seconds: readiness probes must not become provider traffic."""
    cached = _provider_seen.get(id(c))
    if cached is not None and time.monotonic() - cached[0] < _PROVIDER_CACHE_S:
        return dict(cached[1])
    result = await _check(c.gateway.ping)
    _provider_seen[id(c)] = (time.monotonic(), result)
    return result


async def readiness(c: Container) -> tuple[bool, dict[str, Any]]:
    database, redis, provider = await asyncio.gather(
        _check(c.db.ping), _check(c.redis.ping), _provider(c)
    )
    checks = {"database": database, "redis": redis, "provider": provider}
    schema_ok = await c.schema_ok() if database["ok"] else False
    checks["schema"] = {"ok": schema_ok}
    ready = database["ok"] and schema_ok
    degraded = ready and not (redis["ok"] and provider["ok"])
    status = "unavailable" if not ready else "degraded" if degraded else "ready"
    return ready, {"status": status, "checks": checks}


@router.get("/health/live")
async def live() -> dict[str, str]:
    """The process answers. Nothing else is checked (restarting never fixes a dependency)."""
    return {"status": "ok"}


@router.get("/health/ready")
async def ready(c: Services) -> JSONResponse:
    """200 when the worker can serve (database up); 503 naming what is down otherwise."""
    ok, body = await readiness(c)
    return JSONResponse(body, 200 if ok else 503)


@router.get("/health/full")
async def full(c: Services) -> JSONResponse:
    ok, body = await readiness(c)
    in_use, size = c.db.pool_status()
    body.update(
        {
            "unsafe_variant": c.settings.unsafe_no_safeguards,
            "flags": await c.flags.all(),
            "breakers": {
                name: breaker.state.name.lower()
                for name, breaker in (
                    ("database", c.db.breaker),
                    ("redis", c.redis.breaker),
                    ("provider", c.stripe.breaker),
                )
            },
            "db_pool": {"in_use": in_use, "size": size, "public_share": c.db.public_share},
        }
    )
    return JSONResponse(body, 200 if ok else 503)


@router.get("/metrics", include_in_schema=False)
async def metrics(c: Services) -> Response:
    in_use, size = c.db.pool_status()
    c.metrics.db_pool_in_use.set(in_use)
    c.metrics.db_pool_size.set(size)
    return Response(generate_latest(c.metrics.registry), media_type=CONTENT_TYPE_LATEST)
