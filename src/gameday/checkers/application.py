"""Single application: a webhook event changes state at most once, and a booking's side
effects (the confirmation queued, the email delivered) happen at most once.

The service records every application of a payment state change in
``payment_transitions`` with its source (``event:<event id>`` for a webhook), so an event
delivered twenty times must show at most one such row: a second one is the replay that
dedup let through. The confirmation email goes through the outbox under one row per
booking; two rows of kind ``booking_confirmed`` for one booking mean two emails queued.
Delivered emails are counted outside the target (the drill's SMTP sink) and passed in.

Figures show whether the run tested anything: how many events were delivered more than
once and how many confirmations were queued.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from gameday.checkers.result import CheckResult, judge
from gameday.checkers.state import FinalState, TransitionRow

NAME = "single_application"
EVENT_SOURCE = "event:"
CONFIRMATION_KIND = "booking_confirmed"
"""The outbox kind of the confirmation email (``bookings.services.outbox``)."""


def single_application(
    state: FinalState, emails_per_booking: Mapping[int, int] | None = None
) -> CheckResult:
    """Each event id applied at most once; one confirmation queued and sent per booking."""
    by_event: defaultdict[str, list[TransitionRow]] = defaultdict(list)
    for transition in state.transitions:
        if transition.source.startswith(EVENT_SOURCE):
            by_event[transition.source.removeprefix(EVENT_SOURCE)].append(transition)
    violations: list[dict[str, Any]] = [
        {
            "kind": "event_applied_twice",
            "event_id": event_id,
            "applications": len(rows),
            "payment_ids": sorted({r.payment_id for r in rows}),
            "changes": [[r.from_status, r.to_status] for r in rows],
        }
        for event_id, rows in by_event.items()
        if len(rows) > 1
    ]
    queued: defaultdict[int, list[int]] = defaultdict(list)
    for row in state.outbox:
        if row.kind == CONFIRMATION_KIND and row.booking_id is not None:
            queued[row.booking_id].append(row.id)
    violations += [
        {"kind": "confirmation_queued_twice", "booking_id": b, "outbox_ids": ids}
        for b, ids in queued.items()
        if len(ids) > 1
    ]
    violations += [
        {"kind": "email_sent_twice", "booking_id": b, "emails": n}
        for b, n in sorted((emails_per_booking or {}).items())
        if n > 1
    ]
    figures = {
        "events": len(state.events),
        "events_delivered_more_than_once": sum(e.deliveries > 1 for e in state.events),
        "events_failed": sum(e.status == "failed" for e in state.events),
        "event_applications": sum(len(rows) for rows in by_event.values()),
        "confirmations_queued": sum(len(ids) for ids in queued.values()),
    }
    if emails_per_booking is not None:
        figures["emails"] = sum(emails_per_booking.values())
    return judge(
        NAME, violations, missing=state.missing("payment_transitions", "outbox"),
        figures=figures,
        failed="{n} events or side effects were applied more than once",
        passed="every event applied at most once, every confirmation queued at most once",
    )  # fmt: skip
