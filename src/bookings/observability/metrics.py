"""The service's Prometheus metrics, in a registry of their own per app instance.

A registry per instance (not the global default) lets tests and the benchmark run several
apps in one process. Each worker process serves its own ``/metrics``; Prometheus scrapes
every worker, so no multiprocess mode is needed.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.requests = Counter(
            "bookings_http_requests_total",
            "HTTP requests by route template, method and status code.",
            ["route", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "bookings_http_request_duration_seconds",
            "HTTP request latency by route template and method.",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "bookings_http_in_flight_requests", "Requests being served now.", registry=r
        )
        self.shed = Counter(
            "bookings_http_shed_total", "Requests refused with 503 by load shedding.", registry=r
        )
        self.deadline = Counter(
            "bookings_http_deadline_exceeded_total",
            "Requests cancelled and answered 503 at the request deadline.", registry=r,
        )  # fmt: skip
        self.holds = Counter(
            "bookings_holds_total", "Hold attempts by outcome.", ["outcome"], registry=r
        )
        self.booking_conflicts = Counter(
            "bookings_booking_conflicts_total",
            "Holds refused because the range was taken (409 slot_taken).",
            registry=r,
        )
        self.holds_expired = Counter(
            "bookings_holds_expired_total", "Holds released by expiry.", registry=r
        )
        self.payment_attempts = Counter(
            "bookings_payment_attempts_total",
            "Payment executions that reached the provider.",
            registry=r,
        )
        self.payment_outcomes = Counter(
            "bookings_payment_outcomes_total",
            "Payment outcomes (succeeded, declined, requires_action, processing, error).",
            ["outcome"],
            registry=r,
        )
        self.refunds = Counter(
            "bookings_refunds_total", "Refunds issued by reason.", ["reason"], registry=r
        )
        self.idempotency = Counter(
            "bookings_idempotency_total",
            "Idempotency-Key outcomes: executed, replayed, in_progress, mismatch.",
            ["outcome"],
            registry=r,
        )
        self.webhooks = Counter(
            "bookings_webhooks_total",
            "Webhook events: received, processed, deduplicated, failed, rejected, replayed.",
            ["outcome"],
            registry=r,
        )
        self.db_pool_in_use = Gauge(
            "bookings_db_pool_in_use", "Database connections checked out.", registry=r
        )
        self.db_pool_size = Gauge(
            "bookings_db_pool_size", "Database pool capacity (size + overflow).", registry=r
        )
        self.db_lock_timeouts = Gauge(
            "bookings_db_lock_timeouts", "Lock wait timeouts seen since start.", registry=r
        )
        self.redis_up = Gauge("bookings_redis_up", "1 while Redis answers.", registry=r)
        self.cache = Counter(
            "bookings_cache_requests_total",
            "Availability cache lookups: hit, miss, bypass (Redis down).",
            ["result"],
            registry=r,
        )
        self.rate_limited = Counter(
            "bookings_rate_limited_total", "Requests refused with 429.", registry=r
        )
        self.breaker_state = Gauge(
            "bookings_circuit_breaker_state",
            "Circuit breaker state per dependency: 0 closed, 1 half-open, 2 open.",
            ["dependency"],
            registry=r,
        )
        self.outbox_backlog = Gauge(
            "bookings_outbox_backlog", "Emails waiting in the outbox.", registry=r
        )
        self.emails = Counter(
            "bookings_emails_total", "Email deliveries by outcome.", ["outcome"], registry=r
        )
        self.access_log_dropped = Counter(
            "bookings_access_log_dropped_total",
            "Access log rows dropped because the buffer was full (database unreachable).",
            registry=r,
        )
        self.tokens_revoked = Counter(
            "bookings_revoked_tokens_refused_total",
            "Requests refused because their token was issued before a revocation.",
            registry=r,
        )
        self.unsafe = Gauge(
            "bookings_unsafe_variant", "1 when every safeguard is switched off.", registry=r
        )
        for dependency in ("database", "redis", "provider"):
            self.breaker_state.labels(dependency).set(0)
        self.redis_up.set(1)
