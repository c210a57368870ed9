"""The load that runs under a scenario: customers buying (hold, then pay) and browsing
availability, open-loop at fixed rates, spread over the targets the scenario names.

Open-loop on purpose: a closed loop slows down when the target does, which hides exactly
the queueing a fault causes. Each purchase uses a range nobody else asks for, so a 409 in
the background load is a defect signal, not contention; a 401 (a token that expired in a
long drill) logs the customer in again on their next flow.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from gameday.drill.context import DrillContext, ProbeError
from gameday.drill.shop import Session

CONCURRENCY = 64


@dataclass(frozen=True, slots=True)
class LoadProfile:
    rate: float
    """Purchases started per second."""
    browse_rate: float
    """Availability reads per second."""
    targets: tuple[str, ...] = ("ingress",)


class BackgroundLoad:
    def __init__(self, ctx: DrillContext, profile: LoadProfile, horizon_s: float) -> None:
        self.ctx = ctx
        self.profile = profile
        self.horizon_s = horizon_s
        self._tasks: list[asyncio.Task[int]] = []

    def start(self) -> BackgroundLoad:
        driver, p = self.ctx.driver, self.profile
        for flow, rate in ((self._purchase, p.rate), (self._browse, p.browse_rate)):
            if rate > 0:
                run = driver.steady(flow, rate=rate, duration_s=self.horizon_s,
                                    concurrency=CONCURRENCY)  # fmt: skip
                self._tasks.append(asyncio.create_task(run))
        return self

    async def stop(self) -> None:
        """Requests still in flight are recorded as ``info`` (cancelled) by the driver."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def _customer(self, i: int) -> tuple[str, str, Session] | None:
        ctx = self.ctx
        where = self.profile.targets[i % len(self.profile.targets)]
        email = ctx.target.customers[i % len(ctx.target.customers)]
        try:
            return where, email, await ctx.session(email, process="load")
        except ProbeError:
            return None

    async def _purchase(self, i: int) -> None:
        ctx = self.ctx
        found = await self._customer(i)
        if found is None:
            return
        where, email, session = found
        resource, starts, ends = ctx.fresh_range()
        process = f"load{i % CONCURRENCY}"
        held = await ctx.shop.hold(session, resource, starts, ends, process, where)
        if held.status == 401:
            ctx.forget(email)
        booking = (held.value or {}).get("booking_id")
        if held.type == "ok" and isinstance(booking, int):
            ctx.note_booking(booking)
            await ctx.shop.pay(session, booking, f"load-{i}-{booking}", process, where=where)

    async def _browse(self, i: int) -> None:
        ctx = self.ctx
        found = await self._customer(i)
        if found is None:
            return
        where, email, session = found
        resource, starts, ends = ctx.fresh_range()
        seen = await ctx.shop.availability(session, resource, starts, ends,
                                           f"browse{i % CONCURRENCY}", where)  # fmt: skip
        if seen.status == 401:
            ctx.forget(email)
