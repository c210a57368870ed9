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


async def caller(c: Services, credentials: Bearer) -> Principal:
    """The authenticated user; 401 (``token_expired`` / ``invalid_token``) otherwise."""
    if credentials is None:
        raise AuthError("a bearer token is required", code="not_authenticated")
    return c.tokens.decode(credentials.credentials)


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
    c: Services,
    credentials: Bearer,
    x_admin_token: Annotated[str | None, Header(max_length=512)] = None,
) -> Principal:
    """The admin token (``X-Admin-Token``), or a bearer token of an admin user."""
    if x_admin_token is not None:
        return c.auth.check_admin_token(x_admin_token)
    if credentials is None:
        raise AuthError("admin access requires X-Admin-Token", code="not_authenticated")
    who = c.tokens.decode(credentials.credentials)
    if not who.is_admin:
        raise Forbidden("admin access required", code="admin_required")
    return who


Admin = Annotated[Principal, Depends(admin)]
