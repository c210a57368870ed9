"""Every runbook by name, with its severity and the drill scenario that exercises it."""

from __future__ import annotations

from gameday.runbooks import bookings, database, outbox, payments, security, service, webhooks
from gameday.runbooks.engine import Runbook

RUNBOOKS: dict[str, Runbook] = {
    rb.name: rb
    for rb in (
        Runbook(
            "payment-anomaly",
            "critical",
            1,
            "duplicate succeeded charges per booking, internal vs provider status; "
            "refunds the extras through the provider (checkout frozen meanwhile if asked)",
            payments.diagnose,
            payments.apply,
        ),
        Runbook(
            "double-booking",
            "critical",
            2,
            "overlapping active bookings per resource; keeps the canonical one, cancels "
            "(and refunds) the others",
            bookings.diagnose_double_booking,
            bookings.cancel,
        ),
        Runbook(
            "webhook-failure",
            "high",
            3,
            "failed or stuck webhook events, signature rejections, provider lag; "
            "replays them through the normal dedup path",
            webhooks.diagnose,
            webhooks.replay,
        ),
        Runbook(
            "db-connections",
            "critical",
            4,
            "sessions by state, lock waits and holders, longest queries, pool use; ends "
            "sessions idle in a transaction past --older-than",
            database.diagnose,
            database.end_session,
        ),
        Runbook(
            "outbox-backlog",
            "medium",
            5,
            "the e-mail queue: dead and overdue messages, confirmed bookings never told; "
            "requeues and resends",
            outbox.diagnose,
            outbox.mend,
        ),
        Runbook(
            "error-spike",
            "critical",
            4,
            "5xx ratio per route now, dependency health, recent flag changes; turns "
            "safeguard flags found off back on",
            service.diagnose_errors,
            service.set_flag,
        ),
        Runbook(
            "redis-down",
            "high",
            5,
            "Redis health, its breaker and the fallback flag; turns the fallback on",
            service.diagnose_redis,
            service.set_flag,
        ),
        Runbook(
            "slow-responses",
            "high",
            7,
            "p95 per route now, pool use, lock waits, breakers (diagnosis only)",
            service.diagnose_latency,
        ),
        Runbook(
            "stuck-holds",
            "medium",
            7,
            "expired holds still blocking slots; releases them",
            bookings.diagnose_stuck_holds,
            bookings.cancel,
        ),
        Runbook(
            "security",
            "critical",
            6,
            "refused authentication per source, what one source did, where one account "
            "was used from; revokes the tokens of the accounts involved (--lock: locks them)",
            security.diagnose,
            security.revoke,
        ),
    )
}
