"""The FastAPI application: routes, error mapping, middleware, and the worker's lifespan."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable

import structlog
from fastapi import FastAPI

from bookings import __version__
from bookings.api import errors
from bookings.api.middleware import Detached, LoadShedding, RequestContext
from bookings.api.routes import admin, auth, bookings, health, resources, webhooks
from bookings.bootstrap import Container, build
from bookings.settings import Settings

log = structlog.get_logger(__name__)


async def _within(step: str, work: Awaitable[object], limit_s: float = 5.0) -> None:
    """A shutdown step that cannot keep the worker alive: bounded, and named if it hangs."""
    try:
        async with asyncio.timeout(limit_s):
            await work
    except TimeoutError:
        log.error("shutdown step timed out", step=step, limit_s=limit_s)


def create_app(settings: Settings | None = None, container: Container | None = None) -> FastAPI:
    c = container or build(settings or Settings())
    detached = Detached()

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await c.prepare()
        await c.flags.refresh()
        tasks = []
        if c.settings.run_background_jobs:
            tasks.append(asyncio.create_task(c.maintenance.run(), name="bookings-maintenance"))
        if c.settings.access_log_enabled:
            tasks.append(
                asyncio.create_task(
                    c.access_log.run(c.settings.access_log_flush_s), name="bookings-access-log"
                )
            )
        log.info("bookings started", unsafe=c.settings.unsafe_no_safeguards)
        try:
            yield
        finally:
            log.info("bookings stopping")
            for task in tasks:
                task.cancel()
            if tasks:
                await _within("background jobs", asyncio.wait(tasks))
            await _within("requests past their deadline", detached.drain(grace_s=2.0))
            if c.settings.access_log_enabled:  # after them: they are logged too
                await _within("writing the access log", c.access_log.flush_quietly())
            await _within("closing connections", c.close())
            log.info("bookings stopped")

    app = FastAPI(
        title="bookings",
        version=__version__,
        description="The reference booking and payments service of gameday.",
        lifespan=lifespan,
    )
    app.state.container = c
    for module in (auth, resources, bookings, webhooks, admin, health):
        app.include_router(module.router)
    errors.install(app, unsafe=c.settings.unsafe_no_safeguards)
    # Outermost first: the request id wraps everything, shedding happens inside it.
    app.add_middleware(LoadShedding, metrics=c.metrics, limit=c.settings.max_in_flight,
                       deadline_s=c.settings.request_deadline_s, detached=detached)  # fmt: skip
    access = c.access_log if c.settings.access_log_enabled else None
    app.add_middleware(RequestContext, metrics=c.metrics, access=access)
    return app
