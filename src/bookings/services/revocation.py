"""Revoking a user's tokens: every token issued before ``users.tokens_valid_after`` is
refused, access and refresh alike.

A JWT cannot be recalled once issued, and looking each one up would put a query on every
request. Instead each worker keeps the recent revocations in memory (users whose cut-off
is younger than the refresh token's lifetime: older cut-offs have no live token left to
refuse) and reloads them every ``revocation_cache_ttl_s``. A revocation holds at once on
the worker that made it and within that TTL on every other. If the database cannot be
read, the last known list stays in force: an outage must not un-revoke anyone.

Tokens carry their issue time to the microsecond (``iat`` as a fraction), so a login right
after a revocation is not caught by it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

import sqlalchemy as sa
import structlog

from bookings.adapters.freshness import Freshness
from bookings.adapters.tables import users
from bookings.errors import AuthError, DbUnavailable, NotFound
from bookings.services.auth import Principal
from bookings.services.context import Context

log = structlog.get_logger(__name__)
# Far more than any incident revokes; past it the newest cut-offs are kept and it is logged.
_MAX_TRACKED = 100_000


class Revocations:
    def __init__(self, ctx: Context, clock: Callable[[], float] = time.monotonic) -> None:
        self._ctx = ctx
        self._cutoffs: dict[int, float] = {}
        self._freshness = Freshness(ctx.settings.revocation_cache_ttl_s, clock)

    async def reload(self) -> None:
        s = self._ctx.settings
        since = self._ctx.now() - timedelta(seconds=s.refresh_token_ttl_s)
        try:
            async with self._ctx.db.transaction() as conn:
                rows = (
                    await conn.execute(
                        sa.select(users.c.id, users.c.tokens_valid_after)
                        .where(users.c.tokens_valid_after > since)
                        .order_by(users.c.tokens_valid_after.desc())
                        .limit(_MAX_TRACKED)
                    )
                ).all()
        except DbUnavailable:
            return
        if len(rows) == _MAX_TRACKED:
            log.error("revocations past the tracked maximum", tracked=_MAX_TRACKED)
        self._cutoffs = {int(r.id): r.tokens_valid_after.timestamp() for r in rows}
        self._freshness.loaded()

    async def check(self, who: Principal) -> None:
        """Refuse (401 ``token_revoked``) a token issued before its user's cut-off."""
        await self._freshness.ensure(self.reload)
        cutoff = self._cutoffs.get(who.user_id)
        if cutoff is not None and who.issued_at < cutoff:
            self._ctx.metrics.tokens_revoked.inc()
            raise AuthError("the token has been revoked; log in again", code="token_revoked")

    async def revoke(self, user_id: int, *, lock: bool = False) -> datetime:
        """From now on, the user's earlier tokens are refused; new logins are not, unless
        ``lock`` (then they get 403 ``account_locked`` until :meth:`unlock`)."""
        at = self._ctx.now()
        values = {"tokens_valid_after": at, **({"locked_at": at} if lock else {})}
        await self._update(user_id, values)
        self._cutoffs[user_id] = at.timestamp()
        return at

    async def unlock(self, user_id: int) -> None:
        """Logins are accepted again; tokens revoked stay revoked."""
        await self._update(user_id, {"locked_at": None})

    async def _update(self, user_id: int, values: Mapping[str, datetime | None]) -> None:
        async with self._ctx.db.transaction() as conn:
            done = await conn.execute(sa.update(users).where(users.c.id == user_id).values(values))
        if done.rowcount != 1:
            raise NotFound(f"no user {user_id}", code="user_not_found")
