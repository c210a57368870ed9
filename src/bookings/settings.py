"""The one settings class of a ``bookings`` process, read from ``BOOKINGS_*`` variables.

Defaults make a laptop or the embedded drill stack work with no configuration; outside
``environment=local|test`` the defaults that are secrets are refused, so a staging or
production deployment cannot start with a well-known JWT secret or admin token.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_JWT_SECRET = "dev-only-jwt-secret-change-me-0123456789"  # noqa: S105 - refused outside local
DEV_ADMIN_TOKEN = "dev-only-admin-token"  # noqa: S105 - refused outside local
DEV_WEBHOOK_SECRET = "whsec_dev_only"  # noqa: S105 - refused outside local
DEV_GAMEDAY_PASSWORD = "gameday-drill-only"  # noqa: S105 - refused outside local
DEV_STRIPE_KEY = "sk_test_bookings_dev"
_DEV_SECRETS = {
    "jwt_secret": DEV_JWT_SECRET,
    "admin_token": DEV_ADMIN_TOKEN,
    "stripe_webhook_secret": DEV_WEBHOOK_SECRET,
    "gameday_password": DEV_GAMEDAY_PASSWORD,
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BOOKINGS_", extra="ignore", frozen=True)

    environment: Literal["local", "test", "staging", "production"] = "local"

    # Dependencies. postgresql:// and mysql:// / mariadb:// URLs are accepted as such.
    database_url: str = "postgresql://postgres@127.0.0.1:5432/bookings"
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_key_prefix: str = Field(default="bookings", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    stripe_api_key: str = DEV_STRIPE_KEY
    stripe_api_base: str = "http://127.0.0.1:12111"
    stripe_webhook_secret: str = DEV_WEBHOOK_SECRET
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=8025, ge=1, le=65535)
    mail_from: str = "bookings@example.invalid"

    # Secrets and auth.
    jwt_secret: str = DEV_JWT_SECRET
    admin_token: str = DEV_ADMIN_TOKEN
    gameday_password: str = DEV_GAMEDAY_PASSWORD
    access_token_ttl_s: float = Field(default=900.0, gt=0, le=86_400)
    refresh_token_ttl_s: float = Field(default=86_400.0, gt=0, le=30 * 86_400)
    min_token_ttl_s: float = Field(default=1.0, gt=0)
    # Clock-skew tolerance on a token's expiry. Keep it to seconds: a leeway is an expired
    # token still accepted, and one longer than a short access TTL lets an expired session
    # pay (scenario 6 of the drill catches exactly that).
    jwt_leeway_s: float = Field(default=0.0, ge=0, le=3600)
    # A revocation (POST /admin/users/{id}/revoke-tokens) holds at once on the worker that
    # made it and within this many seconds on every other.
    revocation_cache_ttl_s: float = Field(default=2.0, ge=0, le=60)

    # Who asked for what (the access_log table, read by the `security` runbook). The
    # source is the peer's address, or X-Forwarded-For when the peer is one of
    # trusted_proxies (comma-separated addresses or networks, "*" for any, "" for none): a
    # source is only as true as this list, so set it to the load balancers' addresses.
    access_log_enabled: bool = True
    access_log_buffer: int = Field(default=10_000, ge=100, le=1_000_000)
    access_log_flush_s: float = Field(default=1.0, gt=0, le=60)
    access_log_retention_s: float = Field(default=7 * 86_400.0, gt=0)
    trusted_proxies: str = "127.0.0.1,::1"

    # The booking business.
    hold_ttl_s: float = Field(default=900.0, gt=0)
    currency: str = "usd"
    max_booking_days: int = Field(default=31, ge=1)
    horizon_days: int = Field(default=730, ge=1)

    # Database behaviour under trouble.
    db_pool_size: int = Field(default=10, ge=1, le=200)
    db_max_overflow: int = Field(default=5, ge=0, le=200)
    # Connections of each worker's pool (size + overflow) that public traffic (customers,
    # the provider's webhooks) may not take: admin calls, health checks and background
    # jobs keep them, so a storm queues on the rest while the on-call can still operate
    # (a bulkhead; it also keeps the pool under the playbook's 90 % peak). 0: no reserve.
    db_pool_reserved: int = Field(default=3, ge=0, le=200)
    db_pool_timeout_s: float = Field(default=1.5, gt=0)
    db_connect_timeout_s: float = Field(default=1.0, gt=0)
    db_statement_timeout_s: float = Field(default=5.0, gt=0)
    # Below the statement timeout, so a wait on a row lock reads as contention (503
    # db_busy, breaker untouched) rather than as a slow database.
    db_lock_timeout_s: float = Field(default=2.0, gt=0)
    db_breaker_failures: int = Field(default=5, ge=1)
    db_breaker_reset_s: float = Field(default=2.0, gt=0)

    # Redis: short timeouts and a breaker, so an outage costs no per-request stalls.
    redis_timeout_s: float = Field(default=0.25, gt=0)
    redis_breaker_failures: int = Field(default=3, ge=1)
    redis_breaker_reset_s: float = Field(default=5.0, gt=0)
    availability_cache_ttl_s: int = Field(default=30, ge=1)
    rate_limit_per_minute: int = Field(default=600, ge=1)
    rate_limit_premium_factor: int = Field(default=2, ge=1)

    # Payment provider.
    provider_timeout_s: float = Field(default=5.0, gt=0)
    provider_max_retries: int = Field(default=2, ge=0, le=5)
    provider_breaker_failures: int = Field(default=5, ge=1)
    provider_breaker_reset_s: float = Field(default=5.0, gt=0)
    payment_lease_s: float = Field(default=60.0, gt=0)

    # Load shedding and background work.
    max_in_flight: int = Field(default=64, ge=1)
    # Kept under the launch gate's latency blocker (p95 > 2.5 s): a request past it is
    # answered 503 deadline_exceeded (its work finishes). 0 turns the deadline off.
    request_deadline_s: float = Field(default=2.0, ge=0, le=600)
    maintenance_interval_s: float = Field(default=5.0, gt=0)
    outbox_batch: int = Field(default=20, ge=1, le=500)
    outbox_max_attempts: int = Field(default=8, ge=1, le=50)
    outbox_retry_base_s: float = Field(default=2.0, gt=0)
    outbox_retry_max_s: float = Field(default=300.0, gt=0)
    webhook_tolerance_s: int = Field(default=300, ge=1)
    flag_cache_ttl_s: float = Field(default=2.0, ge=0)
    run_background_jobs: bool = True

    log_level: Literal["debug", "info", "warning", "error"] = "info"

    # The variant with every safeguard removed, for proving the harness's checks can fail.
    unsafe_no_safeguards: bool = False

    @model_validator(mode="after")
    def _refuse_dev_secrets_outside_local(self) -> Settings:
        if self.environment in ("local", "test"):
            return self
        weak = [name for name, dev in _DEV_SECRETS.items() if getattr(self, name) == dev]
        if weak:
            raise ValueError(
                f"{', '.join('BOOKINGS_' + n.upper() for n in weak)} must be set in "
                f"environment={self.environment}: the built-in development values are public"
            )
        if self.unsafe_no_safeguards:
            raise ValueError("BOOKINGS_UNSAFE_NO_SAFEGUARDS is for local drills only")
        return self
