"""``outbox-backlog``: the e-mail queue (confirmations) is not draining.

Diagnosis: the outbox by status, messages overdue (pending past their next attempt by more
than ``--older-than``), messages the service gave up on (``dead``) with their last error,
and confirmed bookings that have no confirmation queued at all (the invariant "every
confirmed booking is told so", which the transactional outbox should make impossible).

Resolution: dead messages are put back in the queue (attempts reset, due now), guarded by
their status so a message the service already re-sent is left alone; a missing
confirmation is asked of the service's admin API (``resend-confirmation``). Once the mail
server is back, the service's outbox worker sends them; the re-diagnosis shows the queue.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from gameday.runbooks.context import RunbookError, Runtime, utc
from gameday.runbooks.model import Change, Diagnosis, Finding

_QUEUE = (
    "SELECT id, kind, booking_id, status, attempts, next_attempt_at, last_error, created_at "
    "FROM outbox WHERE status <> 'sent' ORDER BY id"
)
_COUNTS = "SELECT status, COUNT(*) AS n FROM outbox GROUP BY status"
_UNTOLD = (
    "SELECT b.id FROM bookings b WHERE b.status = 'confirmed' AND NOT EXISTS "
    "(SELECT 1 FROM outbox o WHERE o.booking_id = b.id AND o.kind = 'booking_confirmed') "
    "ORDER BY b.id"
)
_LIMIT = 20
_MAX_CHANGES = 1000


async def diagnose(rt: Runtime) -> Diagnosis:
    now = datetime.now(UTC)
    rows = await rt.rows(_QUEUE)
    counts = Counter({str(r["status"]): int(r["n"]) for r in await rt.rows(_COUNTS)})
    untold = [int(r["id"]) for r in await rt.rows(_UNTOLD)]
    late = now - timedelta(seconds=rt.older_than_s)
    overdue = [r for r in rows if r["status"] == "pending" and utc(r["next_attempt_at"]) < late]
    dead = [r for r in rows if r["status"] == "dead"]
    changes = [
        Change(
            "requeue_message",
            f"outbox:{r['id']}",
            f"{r['kind']} for booking {r['booking_id']} dead after {r['attempts']} "
            f"attempt(s): {(r['last_error'] or '')[:100]}",
            rows=1,
            detail={"booking_id": r["booking_id"]},
        )
        for r in dead
    ] + [
        Change(
            "resend_confirmation",
            f"booking:{b}",
            "confirmed without a confirmation e-mail queued",
            rows=1,
        )
        for b in untold
    ]
    findings = []
    if dead:
        findings.append(
            Finding(
                f"{len(dead)} message(s) given up on (dead)",
                [
                    {
                        "outbox_id": int(r["id"]),
                        "booking_id": r["booking_id"],
                        "attempts": int(r["attempts"]),
                        "last_error": (r["last_error"] or "")[:200],
                    }
                    for r in dead[:_LIMIT]
                ],
            )
        )
    if overdue:
        oldest = min(utc(r["next_attempt_at"]) for r in overdue)
        findings.append(
            Finding(
                f"{len(overdue)} message(s) overdue by more than {rt.older_than_s:g} s (oldest "
                f"due {oldest.isoformat(timespec='seconds')}): is the outbox worker running?",
                [
                    {"outbox_id": int(r["id"]), "attempts": int(r["attempts"])}
                    for r in overdue[:_LIMIT]
                ],
            )
        )
    if untold:
        findings.append(
            Finding(
                f"{len(untold)} confirmed booking(s) with no confirmation queued",
                [{"booking_id": b} for b in untold[:_LIMIT]],
            )
        )
    notes = [
        "outbox by status: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "empty")
    ]
    if dead:
        notes.append("requeue only once the mail server answers again, or they die again")
    return Diagnosis(
        "outbox-backlog",
        [
            "the outbox by status",
            "messages given up on",
            "messages overdue",
            "confirmed bookings without a confirmation",
        ],
        findings,
        changes[:_MAX_CHANGES],
        {
            c.subject: "dead" if c.action == "requeue_message" else "untold"
            for c in changes[:_MAX_CHANGES]
        },
        {
            "dead_messages": len(dead),
            "overdue_messages": len(overdue),
            "unconfirmed_bookings": len(untold),
        },
        notes,
    )


async def mend(rt: Runtime, change: Change, _incident: str) -> str:
    if change.action == "requeue_message":
        outbox_id = int(change.subject.removeprefix("outbox:"))
        async with rt.db() as conn:
            done = await conn.execute(
                sa.text(
                    "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = :now, "
                    "last_error = NULL WHERE id = :id AND status = 'dead'"
                ),
                {"id": outbox_id, "now": rt.db_now()},
            )
        if done.rowcount != 1:
            raise RunbookError(f"message {outbox_id} is no longer dead")
        return f"message {outbox_id} queued again"
    if change.action == "resend_confirmation":
        booking = change.subject.removeprefix("booking:")
        await rt.admin(
            "POST",
            f"/admin/bookings/{booking}/resend-confirmation",
            expect=202,
            what=f"resend for booking {booking}",
        )
        return f"confirmation for booking {booking} queued"
    raise RunbookError(f"outbox-backlog cannot {change.action}")
