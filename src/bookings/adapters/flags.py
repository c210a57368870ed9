"""Runtime feature flags, stored in the database and cached briefly in each worker.

A flip through the admin API is seen by every worker within ``flag_cache_ttl_s`` without a
restart or redeploy. If the database cannot be read, the last known values stay in force
(a database outage must not silently switch safeguards off). On the unsafe variant the
safeguard flags read as off and cannot be switched on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from bookings.adapters.db import Database
from bookings.adapters.freshness import Freshness
from bookings.adapters.tables import feature_flags
from bookings.errors import DbUnavailable, FlagLocked, NotFound

PAYMENT_IDEMPOTENCY_ENFORCED = "PAYMENT_IDEMPOTENCY_ENFORCED"
BOOKING_ATOMIC_LOCKING = "BOOKING_ATOMIC_LOCKING"
REDIS_OPTIONAL_FALLBACK = "REDIS_OPTIONAL_FALLBACK"
WEBHOOK_DEDUP_ENABLED = "WEBHOOK_DEDUP_ENABLED"
GAMEDAY_VERBOSE_OBSERVABILITY = "GAMEDAY_VERBOSE_OBSERVABILITY"
# An incident switch, not a safeguard: new holds and payments get 503 checkout_frozen while
# it is on (webhooks, settlement, refunds and reads go on), as playbook 000 Part 5.1 asks
# ("freeze new payment attempts") while duplicate charges are reconciled.
CHECKOUT_FROZEN = "CHECKOUT_FROZEN"

DEFAULTS = {
    PAYMENT_IDEMPOTENCY_ENFORCED: True,
    BOOKING_ATOMIC_LOCKING: True,
    REDIS_OPTIONAL_FALLBACK: True,
    WEBHOOK_DEDUP_ENABLED: True,
    GAMEDAY_VERBOSE_OBSERVABILITY: False,
    CHECKOUT_FROZEN: False,
}
SAFEGUARDS = frozenset(
    {PAYMENT_IDEMPOTENCY_ENFORCED, BOOKING_ATOMIC_LOCKING, WEBHOOK_DEDUP_ENABLED}
)


class FlagStore:
    def __init__(
        self,
        db: Database,
        *,
        ttl_s: float,
        unsafe: bool,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[dict[str, bool]], None] | None = None,
    ) -> None:
        self._db = db
        self._unsafe = unsafe
        self._on_change = on_change
        self._values = self._apply_unsafe(dict(DEFAULTS))
        self._freshness = Freshness(ttl_s, clock)

    def _apply_unsafe(self, values: dict[str, bool]) -> dict[str, bool]:
        if self._unsafe:
            values.update(dict.fromkeys(SAFEGUARDS, False))
            values[REDIS_OPTIONAL_FALLBACK] = False
        return values

    async def refresh(self) -> dict[str, bool]:
        try:
            async with self._db.transaction() as conn:
                rows = (await conn.execute(sa.select(feature_flags))).all()
        except DbUnavailable:
            return dict(self._values)
        values = dict(DEFAULTS)
        values.update({row.name: bool(row.enabled) for row in rows if row.name in DEFAULTS})
        values = self._apply_unsafe(values)
        changed = values != self._values
        self._values = values
        self._freshness.loaded()
        if changed and self._on_change is not None:
            self._on_change(dict(values))
        return dict(values)

    async def all(self) -> dict[str, bool]:
        await self._freshness.ensure(self.refresh)
        return dict(self._values)

    async def enabled(self, name: str) -> bool:
        return (await self.all())[name]

    def cached(self, name: str) -> bool:
        """The last known value, without I/O (for hot paths that must not touch the DB)."""
        return self._values[name]

    async def set(self, name: str, enabled: bool, *, actor: str, now: datetime) -> None:
        if name not in DEFAULTS:
            raise NotFound(f"no feature flag named {name}", code="unknown_flag")
        if self._unsafe and enabled and (name in SAFEGUARDS or name == REDIS_OPTIONAL_FALLBACK):
            raise FlagLocked(f"{name} cannot be enabled on the unsafe variant")
        values = {"enabled": enabled, "updated_at": now, "updated_by": actor}
        try:
            async with self._db.transaction() as conn:
                await conn.execute(sa.insert(feature_flags).values(name=name, **values))
        except sa_exc.IntegrityError:  # the usual case: the flag has a row already
            async with self._db.transaction() as conn:
                await conn.execute(
                    sa.update(feature_flags).where(feature_flags.c.name == name).values(**values)
                )
        await self.refresh()
