"""Passwords, access and refresh tokens, and who the caller is.

Access tokens are short-lived HS256 JWTs (default 15 minutes; a client may ask for a
shorter one, down to ``min_token_ttl_s``, which is how drills expire a token mid-checkout).
Refresh tokens are longer-lived JWTs of another ``typ`` that only ``/auth/refresh`` accepts.
Passwords are hashed with the standard library's scrypt.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt
import sqlalchemy as sa

from bookings.adapters.db import Database
from bookings.adapters.tables import users
from bookings.domain.model import Role, Tier
from bookings.errors import AuthError, Forbidden
from bookings.settings import Settings

_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}
ALGORITHM = "HS256"


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)
    return f"scrypt${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        _, salt, digest = stored.split("$")
        candidate = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), **_SCRYPT)
    except ValueError:
        return False
    return hmac.compare_digest(candidate.hex(), digest)


# A real hash to compare against when the email is unknown, so timing reveals nothing.
_DUMMY_HASH = hash_password(secrets.token_hex(8))


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: int
    role: Role
    tier: Tier
    issued_at: float = 0.0
    """When its token was issued (Unix seconds, with the fraction): revocation compares it."""

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: float


class Tokens:
    """Issuing and checking JWTs: pure computation over the settings' secret."""

    def __init__(self, settings: Settings, now: Callable[[], datetime]) -> None:
        self._settings = settings
        self._now = now

    def _encode(self, principal: Principal, kind: str, ttl_s: float) -> str:
        issued = self._now()
        claims = {
            "sub": str(principal.user_id),
            "role": principal.role.value,
            "tier": principal.tier.value,
            "typ": kind,
            # A fraction of a second, not PyJWT's whole seconds: a revocation must not
            # catch the login that follows it within the same second.
            "iat": issued.timestamp(),
            "exp": issued + timedelta(seconds=ttl_s),
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self._settings.jwt_secret, algorithm=ALGORITHM)

    def issue(self, principal: Principal, ttl_s: float | None = None) -> TokenPair:
        """A token pair; ``ttl_s`` may shorten the access token's life, never lengthen it."""
        s = self._settings
        access_ttl = s.access_token_ttl_s if ttl_s is None else ttl_s
        access_ttl = min(max(access_ttl, s.min_token_ttl_s), s.access_token_ttl_s)
        return TokenPair(
            access_token=self._encode(principal, "access", access_ttl),
            refresh_token=self._encode(principal, "refresh", s.refresh_token_ttl_s),
            expires_in=access_ttl,
        )

    def decode(self, token: str, kind: str = "access") -> Principal:
        try:
            claims = jwt.decode(
                token,
                self._settings.jwt_secret,
                algorithms=[ALGORITHM],
                options={"require": ["exp", "iat", "sub", "typ"]},
                leeway=self._settings.jwt_leeway_s,
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("the token has expired; refresh it", code="token_expired") from None
        except jwt.PyJWTError:
            raise AuthError("the token is not valid", code="invalid_token") from None
        if claims.get("typ") != kind:
            raise AuthError(f"a {kind} token is required", code="invalid_token")
        try:
            return Principal(
                int(claims["sub"]),
                Role(claims["role"]),
                Tier(claims["tier"]),
                float(claims["iat"]),
            )
        except (KeyError, ValueError, TypeError):
            raise AuthError("the token is not valid", code="invalid_token") from None


class Auth:
    """Who may come in: customers by password, operators by the admin token."""

    def __init__(self, settings: Settings, db: Database, tokens: Tokens) -> None:
        self._settings = settings
        self._db = db
        self._tokens = tokens

    async def login(self, email: str, password: str, ttl_s: float | None = None) -> TokenPair:
        async with self._db.transaction() as conn:
            row = (
                await conn.execute(sa.select(users).where(users.c.email == email.lower()))
            ).first()
        stored = row.password_hash if row else _DUMMY_HASH
        # scrypt takes tens of milliseconds: keep it off the event loop.
        if not await asyncio.to_thread(verify_password, password, stored) or not row:
            raise AuthError("wrong email or password", code="invalid_credentials")
        if row.locked_at is not None:  # told only to whoever knows the password
            raise Forbidden("the account is locked; contact support", code="account_locked")
        return self._tokens.issue(Principal(row.id, Role(row.role), Tier(row.tier)), ttl_s)

    def check_admin_token(self, token: str) -> Principal:
        if not hmac.compare_digest(token.encode(), self._settings.admin_token.encode()):
            raise Forbidden("admin access required", code="admin_required")
        return Principal(0, Role.ADMIN, Tier.PREMIUM)
