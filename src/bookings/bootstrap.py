"""The composition root: every object of one ``bookings`` process, built in one place."""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from sqlalchemy.exc import SQLAlchemyError

from bookings.adapters.access_log import AccessLog
from bookings.adapters.breaker import BreakerState, CircuitBreaker
from bookings.adapters.cache import AvailabilityCache
from bookings.adapters.db import Database
from bookings.adapters.flags import GAMEDAY_VERBOSE_OBSERVABILITY, FlagStore
from bookings.adapters.mailer import SmtpMailer
from bookings.adapters.ratelimit import RateLimiter
from bookings.adapters.redis import RedisGuard
from bookings.adapters.stripe_gateway import StripeGateway
from bookings.domain.ports import Mailer, PaymentGateway
from bookings.errors import BookingsError, DbUnavailable
from bookings.observability import logging as logs
from bookings.observability.metrics import Metrics
from bookings.services import schema
from bookings.services.admin import Admin
from bookings.services.auth import Auth, Tokens
from bookings.services.context import Context
from bookings.services.holds import Holds
from bookings.services.idempotency import IdempotencyStore
from bookings.services.maintenance import Maintenance
from bookings.services.outbox import Outbox
from bookings.services.payments import Payments
from bookings.services.reconcile import Reconciler
from bookings.services.revocation import Revocations
from bookings.services.settlement import Settlement
from bookings.services.webhooks import Webhooks
from bookings.settings import Settings

log = structlog.get_logger(__name__)


class SchemaError(BookingsError):
    code = "schema_incomplete"


@dataclass
class Container:
    settings: Settings
    metrics: Metrics
    ctx: Context
    db: Database
    redis: RedisGuard
    flags: FlagStore
    gateway: PaymentGateway
    tokens: Tokens
    auth: Auth
    revocations: Revocations
    access_log: AccessLog
    limiter: RateLimiter
    holds: Holds
    keys: IdempotencyStore
    payments: Payments
    settlement: Settlement
    webhooks: Webhooks
    outbox: Outbox
    admin: Admin
    maintenance: Maintenance
    reconciler: Reconciler
    stripe: StripeGateway

    schema_verified: bool = False

    async def prepare(self) -> None:
        """Start-up: the unsafe variant drops the last-line constraints (loudly); the safe
        service refuses to run on a database without them. An unreachable database is not
        fatal — the worker starts unready and ``schema_ok`` checks again later."""
        if self.settings.unsafe_no_safeguards:
            log.critical(
                "UNSAFE VARIANT: locks, constraints, idempotency and webhook dedup are OFF. "
                "This service WILL double-book and double-charge. Drills only."
            )
            await schema.drop_constraints(self.db.engine)
            return
        try:
            await self.schema_ok()
        except DbUnavailable:
            log.warning("database unreachable at start-up; starting unready")

    async def schema_ok(self) -> bool:
        if self.settings.unsafe_no_safeguards or self.schema_verified:
            return True
        try:
            missing = await schema.missing_constraints(self.db.engine)
        except (OSError, TimeoutError, SQLAlchemyError) as error:
            raise DbUnavailable() from error
        if missing:
            raise SchemaError(
                f"the database lacks {', '.join(missing)} (was it used by the unsafe "
                "variant?): run `bookings migrate` on a fresh database"
            )
        self.schema_verified = True
        return True

    async def close(self) -> None:
        await self.stripe.close()
        await self.redis.close()
        await self.db.close()


def build(settings: Settings, mailer: Mailer | None = None) -> Container:
    metrics = Metrics()
    metrics.unsafe.set(1 if settings.unsafe_no_safeguards else 0)

    def breaker(name: str, failures: int, reset_s: float) -> CircuitBreaker:
        def changed(dependency: str, state: BreakerState) -> None:
            metrics.breaker_state.labels(dependency).set(int(state))
            log.warning("circuit breaker", dependency=dependency, state=state.name.lower())

        return CircuitBreaker(name, failures=failures, reset_s=reset_s, on_change=changed)

    s = settings
    db = Database(s, breaker("database", s.db_breaker_failures, s.db_breaker_reset_s))
    flags = FlagStore(
        db,
        ttl_s=s.flag_cache_ttl_s,
        unsafe=s.unsafe_no_safeguards,
        on_change=lambda values: logs.set_verbose(
            values[GAMEDAY_VERBOSE_OBSERVABILITY], s.log_level
        ),
    )
    ctx = Context(settings=s, db=db, flags=flags, metrics=metrics)
    redis = RedisGuard(
        s, breaker("redis", s.redis_breaker_failures, s.redis_breaker_reset_s), metrics
    )
    stripe = StripeGateway(
        s, breaker("provider", s.provider_breaker_failures, s.provider_breaker_reset_s)
    )
    outbox = Outbox(ctx, mailer or SmtpMailer(s))
    settlement = Settlement(ctx, stripe, on_email_queued=outbox.wakeup.set)
    holds = Holds(
        ctx,
        AvailabilityCache(
            redis, flags, metrics, ttl_s=s.availability_cache_ttl_s, prefix=s.redis_key_prefix
        ),
    )
    keys = IdempotencyStore(ctx, lease_s=s.payment_lease_s)
    payments = Payments(ctx, stripe, settlement)
    webhooks = Webhooks(ctx, settlement)
    tokens = Tokens(s, ctx.now)
    revocations = Revocations(ctx)
    access_log = AccessLog(db, metrics, capacity=s.access_log_buffer)
    return Container(
        settings=s,
        metrics=metrics,
        ctx=ctx,
        db=db,
        redis=redis,
        flags=flags,
        gateway=stripe,
        tokens=tokens,
        auth=Auth(s, db, tokens),
        revocations=revocations,
        access_log=access_log,
        limiter=RateLimiter(
            redis, flags, per_minute=s.rate_limit_per_minute, prefix=s.redis_key_prefix
        ),
        holds=holds,
        keys=keys,
        payments=payments,
        settlement=settlement,
        webhooks=webhooks,
        outbox=outbox,
        admin=Admin(
            ctx,
            holds=holds,
            payments=payments,
            webhooks=webhooks,
            outbox=outbox,
            flags=flags,
            revocations=revocations,
        ),
        maintenance=Maintenance(ctx, holds, outbox, settlement, keys, access_log=access_log),
        reconciler=Reconciler(ctx, stripe, settlement),
        stripe=stripe,
    )
