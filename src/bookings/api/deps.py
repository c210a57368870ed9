"""FastAPI dependencies as ``Annotated`` aliases, so routes stay one-liners about intent."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from bookings.bootstrap import Container
from bookings.errors import AuthError, Forbidden, RateLimited
from bookings.services.auth import Principal

_bearer = HTTPBearer(auto_error=False)


async def container(request: Request) -> Container:
    found: Container = request.app.state.container
    return found


Services = Annotated[Container, Depends(container)]
Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def _bearer_principal(request: Request, c: Container, token: str) -> Principal:
    who = c.tokens.decode(token)
    # Named in the access log even when refused below: a revoked token still presented
    # is evidence the security runbook shows.
    request.state.user_id = who.user_id
    request.state.token_issued_at = who.issued_at
    await c.revocations.check(who)
    return who


async def caller(request: Request, c: Services, credentials: Bearer) -> Principal:
    """The authenticated user; 401 (``token_expired`` / ``invalid_token`` /
    ``token_revoked``) otherwise."""
    if credentials is None:
        raise AuthError("a bearer token is required", code="not_authenticated")
    return await _bearer_principal(request, c, credentials.credentials)


Caller = Annotated[Principal, Depends(caller)]


async def limited_caller(c: Services, who: Caller) -> Principal:
    """The caller, counted against their rate limit (premium customers get more)."""
    factor = c.settings.rate_limit_premium_factor if who.tier.value == "premium" else 1
    try:
        await c.limiter.hit(str(who.user_id), factor)
    except RateLimited:
        c.metrics.rate_limited.inc()
        raise
    return who


LimitedCaller = Annotated[Principal, Depends(limited_caller)]


async def admin(
    request: Request,
    c: Services,
    credentials: Bearer,
    x_admin_token: Annotated[str | None, Header(max_length=512)] = None,
) -> Principal:
    """The admin token (``X-Admin-Token``), or a bearer token of an admin user."""
    if x_admin_token is not None:
        return c.auth.check_admin_token(x_admin_token)
    if credentials is None:
        raise AuthError("admin access requires X-Admin-Token", code="not_authenticated")
    who = await _bearer_principal(request, c, credentials.credentials)
    if not who.is_admin:
        raise Forbidden("admin access required", code="admin_required")
    return who


Admin = Annotated[Principal, Depends(admin)]
