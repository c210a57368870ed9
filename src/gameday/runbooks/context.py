"""What a runbook talks to: the target's database, its service (admin API) and the payment
provider; resolved from a running embedded stack or a target profile.

Reads use short transactions with plain SQL over the reference schema (the same tables the
drill's checkers read); writes go through the service's admin API where one exists (so the
service's own rules, locks and audit apply) and to the provider with idempotency keys.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
import stripe
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

from gameday.checkers.readers import async_database_url, read_provider
from gameday.checkers.state import IntentRow
from gameday.drill.target import TargetError, load_profile
from gameday.stack.state import running_stacks

_TIMEOUT_S = 15.0
_ATTEMPTS = 4


def _retry_after(answer: httpx.Response) -> float:
    try:
        return max(0.1, float(answer.headers.get("retry-after", "0.5")))
    except ValueError:
        return 0.5


class RunbookError(RuntimeError):
    """The runbook could not run (target unreachable, missing credentials): one line."""


@dataclass(frozen=True)
class RunbookTarget:
    name: str
    database_url: str
    service_url: str
    admin_token: str
    provider_url: str
    provider_key: str
    instances: tuple[str, ...] = ()
    """Each instance's own URL (metrics are per process); empty: the service URL only."""

    @staticmethod
    def of_stack(stack_id: str | None) -> RunbookTarget:
        stacks = running_stacks()
        if stack_id:
            stacks = [s for s in stacks if s.get("id") == stack_id]
        if not stacks:
            raise RunbookError(
                "no running embedded stack"
                + (f" {stack_id}" if stack_id else "")
                + ": start one (gameday stack up) or give --target PROFILE.yaml"
            )
        state = stacks[0]
        secrets: Mapping[str, str] = state.get("secrets") or {}
        return RunbookTarget(
            name=f"embedded stack {state['id']}",
            database_url=str(state.get("database_url")),
            service_url=str(state.get("ingress")),
            admin_token=secrets.get("admin_token", ""),
            provider_url=str(state.get("provider") or ""),
            provider_key=secrets.get("provider_key", ""),
            instances=tuple(str(u) for u in (state.get("workers") or {}).values()),
        )

    @staticmethod
    def of_profile(path: Path) -> RunbookTarget:
        try:
            t = load_profile(path)
        except TargetError as error:
            raise RunbookError(str(error)) from None
        if not t.database_url:
            raise RunbookError(f"{path}: runbooks need the database (database_url_env)")
        return RunbookTarget(
            t.name,
            t.database_url,
            t.base_url,
            t.admin_token,
            t.provider_url,
            t.provider_key,
            tuple(t.instances.values()),
        )


class Runtime:
    """One runbook run's connections; closed by ``close``."""

    def __init__(
        self,
        target: RunbookTarget,
        *,
        older_than_s: float = 60.0,
        window_s: float = 5.0,
        scope: Mapping[str, Any] | None = None,
    ) -> None:
        self.target = target
        self.older_than_s = older_than_s
        """The age past which a runbook acts on something (an idle transaction…)."""
        self.window_s = window_s
        """Seconds between two scrapes of an instance's metrics (rates "now")."""
        self.scope: dict[str, Any] = dict(scope or {})
        """A runbook's own options (``security``: the source, the user), None when not
        given. The plan carries them, so an apply re-diagnoses exactly what was planned."""
        try:
            url = async_database_url(target.database_url)
        except Exception as error:
            raise RunbookError(f"database URL: {error}") from None
        self.dialect = url.get_backend_name()
        self._engine = create_async_engine(url, poolclass=NullPool)
        self.http = httpx.AsyncClient(
            base_url=target.service_url,
            timeout=_TIMEOUT_S,
            headers={"X-Admin-Token": target.admin_token},
        )

    async def close(self) -> None:
        await self.http.aclose()
        await self._engine.dispose()

    @contextlib.asynccontextmanager
    async def db(self) -> AsyncIterator[AsyncConnection]:
        try:
            async with self._engine.connect() as conn, conn.begin():
                yield conn
        except (sa.exc.SQLAlchemyError, OSError) as error:
            # Unreachable, refused, or a schema without the reference tables: one line.
            raise RunbookError(f"database: {str(error).splitlines()[0][:200]}") from None

    async def rows(self, sql: str, **params: Any) -> list[sa.RowMapping]:
        async with self.db() as conn:
            return list((await conn.execute(sa.text(sql), params)).mappings().all())

    def db_now(self) -> datetime:
        """Now, as the reference schema stores it: aware on PostgreSQL, naive UTC on
        MariaDB (whose DATETIME has no zone)."""
        now = datetime.now(UTC)
        return now if self.dialect == "postgresql" else now.replace(tzinfo=None)

    async def execute(self, sql: str, **params: Any) -> None:
        async with self.db() as conn:
            await conn.execute(sa.text(sql), params)

    def intents(self) -> list[IntentRow]:
        if not self.target.provider_url:
            raise RunbookError("the target names no payment provider")
        try:
            return read_provider(self.target.provider_url, self.target.provider_key)
        except stripe.StripeError as error:
            raise RunbookError(f"provider: {error.user_message or error}") from None

    def stripe(self) -> stripe.StripeClient:
        return stripe.StripeClient(
            self.target.provider_key,
            max_network_retries=2,
            base_addresses={"api": self.target.provider_url},
        )

    async def admin(
        self, method: str, path: str, *, expect: int = 200, what: str, **kwargs: Any
    ) -> dict[str, Any]:
        """An admin action's JSON answer; any other status than ``expect`` is a
        ``RunbookError`` naming ``what`` was attempted."""
        if not self.target.admin_token:
            raise RunbookError("no admin token for the service (admin_token_env)")
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                answer = await self.http.request(method, path, **kwargs)
            except httpx.HTTPError as error:
                raise RunbookError(f"service {self.target.service_url}: {error}") from None
            # A 503 is the service asking to retry shortly (a busy row, a breaker): the
            # admin actions are idempotent, so a few bounded retries are safe.
            if answer.status_code == 503 and attempt < _ATTEMPTS:
                await asyncio.sleep(min(_retry_after(answer), 2.0) * attempt)
                continue
            if answer.status_code != expect:
                raise RunbookError(f"{what}: {answer.status_code} {answer.text[:200]}")
            found: dict[str, Any] = answer.json()
            return found
        raise AssertionError("unreachable")  # pragma: no cover

    async def metrics(self, base_url: str | None = None) -> list[Sample] | None:
        """The samples of an instance's ``/metrics`` (the service URL by default: whichever
        instance answers); ``None`` when they cannot be read — metrics are evidence here,
        never a reason for a diagnosis to stop."""
        try:
            answer = await self.http.get(f"{base_url or self.target.service_url}/metrics")
        except httpx.HTTPError:
            return None
        if answer.status_code != 200:
            return None
        return [s for f in text_string_to_metric_families(answer.text) for s in f.samples]


def total(samples: list[Sample], name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    return sum(
        s.value
        for s in samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def utc(value: Any) -> datetime:
    """A database timestamp as an aware UTC time: MariaDB gives naive datetimes (stored as
    UTC), PostgreSQL aware ones, and some drivers text."""
    at: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
    return at if at.tzinfo else at.replace(tzinfo=UTC)
