"""``webhook-failure`` (playbook 004 / 000 Part 5): events the service failed to apply.

Diagnosis: events recorded as failed (attempts, last error, when), claims stuck in
``processing`` past the service's takeover time, signature rejections counted by the
service, and the provider's events still waiting for an acknowledgement (the lag). The
resolution replays each failed event through the service's normal path (the admin replay
runs the same dedup and monotonic state machine as a delivery), so a replay can never
apply an event twice; the outcome of each replay is shown and the re-diagnosis must find
none failed.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import stripe

from gameday.runbooks.context import RunbookError, Runtime, total, utc
from gameday.runbooks.model import Change, Diagnosis, Finding

_FAILED = (
    "SELECT id, type, status, attempts, deliveries, last_error, received_at "
    "FROM webhook_events WHERE status IN ('failed', 'processing') ORDER BY received_at, id"
)
STUCK_AFTER = timedelta(seconds=90)
"""Longer than the service's own takeover of a stale claim (60 s)."""
_LIMIT = 20
_MAX_REPLAYS = 500


async def _rejected(rt: Runtime) -> float | None:
    """Signature rejections the answering instance counted (``None``: not readable)."""
    samples = await rt.metrics()
    if samples is None:
        return None
    return total(samples, "bookings_webhooks_total", outcome="rejected")


def _pending_at_provider(rt: Runtime) -> tuple[int, float | None]:
    """Provider events not yet acknowledged, and the age of the oldest (seconds)."""
    if not rt.target.provider_url:
        return 0, None
    try:
        events = rt.stripe().v1.events.list(params={"limit": 100}).auto_paging_iter()
        pending = [e for _, e in zip(range(2000), events, strict=False) if e.pending_webhooks]
    except stripe.StripeError as error:
        raise RunbookError(f"provider: {error.user_message or error}") from None
    oldest = min((int(e.created) for e in pending), default=None)
    return len(pending), (time.time() - oldest if oldest is not None else None)


async def diagnose(rt: Runtime) -> Diagnosis:
    now = datetime.now(UTC)
    rows = await rt.rows(_FAILED)
    failed = [r for r in rows if r["status"] == "failed"]
    stuck = [
        r for r in rows if r["status"] == "processing" and utc(r["received_at"]) < now - STUCK_AFTER
    ]
    rejected = await _rejected(rt)
    pending, oldest = await asyncio.to_thread(_pending_at_provider, rt)
    replay = (failed + stuck)[:_MAX_REPLAYS]
    changes = [
        Change(
            "replay_event",
            f"event:{r['id']}",
            f"{r['type']} {r['status']} after {r['attempts']} attempt(s): "
            f"{(r['last_error'] or 'no error recorded')[:120]}",
            rows=1,
            detail={"type": r["type"], "attempts": int(r["attempts"])},
        )
        for r in replay
    ]
    findings = []
    if failed:
        findings.append(
            Finding(
                f"{len(failed)} event(s) failed to apply",
                [
                    {
                        "event": r["id"],
                        "type": r["type"],
                        "attempts": int(r["attempts"]),
                        "deliveries": int(r["deliveries"]),
                        "last_error": (r["last_error"] or "")[:200],
                        "received_at": str(r["received_at"]),
                    }
                    for r in failed[:_LIMIT]
                ],
            )
        )
    if stuck:
        findings.append(
            Finding(
                f"{len(stuck)} event(s) stuck in processing for over "
                f"{STUCK_AFTER.total_seconds():.0f} s",
                [{"event": r["id"], "since": str(r["received_at"])} for r in stuck[:_LIMIT]],
            )
        )
    notes = [
        f"signature rejections counted by the answering instance: {rejected:g}"
        if rejected is not None
        else "signature rejections: /metrics not readable"
    ]
    notes.append(
        f"provider events awaiting acknowledgement: {pending}"
        + (f" (oldest {oldest:.0f} s)" if oldest is not None else "")
    )
    if len(failed) + len(stuck) > _MAX_REPLAYS:
        notes.append(f"only the first {_MAX_REPLAYS} events are planned; run again after")
    return Diagnosis(
        "webhook-failure",
        [
            "webhook events recorded as failed",
            "claims stuck in processing",
            "signature rejections",
            "provider events awaiting acknowledgement",
        ],
        findings,
        changes,
        {c.subject: "unapplied" for c in changes},
        {"failed_events": len(failed), "stuck_events": len(stuck)},
        notes,
    )


async def replay(rt: Runtime, change: Change, _incident: str) -> str:
    if change.action != "replay_event":
        raise RunbookError(f"webhook-failure cannot {change.action}")
    event = change.subject.removeprefix("event:")
    found = await rt.admin("POST", f"/admin/webhooks/{event}/replay", what=f"replay of {event}")
    return f"{event}: {found.get('outcome', '?')}"
