"""``/auth``: log in and refresh."""

from __future__ import annotations

from fastapi import APIRouter, Request

from bookings.api.deps import Services
from bookings.api.schemas import ERRORS, RefreshRequest, TokenRequest, TokenResponse
from bookings.services.auth import TokenPair

router = APIRouter(prefix="/auth", tags=["auth"], responses=ERRORS)


def _out(pair: TokenPair) -> TokenResponse:
    return TokenResponse(
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        expires_in=pair.expires_in,
    )


@router.post("/token")
async def token(body: TokenRequest, c: Services) -> TokenResponse:
    """Exchange email and password for an access token and a refresh token."""
    return _out(await c.auth.login(body.email, body.password, body.ttl_s))


@router.post("/refresh")
async def refresh(request: Request, body: RefreshRequest, c: Services) -> TokenResponse:
    """A new token pair for a valid refresh token (use it when a call says token_expired).
    A refresh token issued before its user's tokens were revoked is refused."""
    who = c.tokens.decode(body.refresh_token, "refresh")
    # The access log names who tried, refused or not.
    request.state.user_id, request.state.token_issued_at = who.user_id, who.issued_at
    await c.revocations.check(who)
    return _out(c.tokens.issue(who, body.ttl_s))
