"""``payment-anomaly`` (playbook 001 / 000 Part 5): duplicate charges and status divergence.

Diagnosis reads the provider first: a booking is charged twice only when the provider says
two of its PaymentIntents succeeded and are not refunded ("reconcile before money moves").
The intent our payment row points at is kept (else the earliest); every other one is
refunded through the provider with an idempotency key derived from (incident, intent), so
a repeated apply can never refund twice. Divergences between our payment status and the
provider's are reported for a human (``bookings reconcile`` mends them).

Checkout can be frozen first (``--freeze-checkout``: the service's ``CHECKOUT_FROZEN`` flag,
new holds and payments get 503 while webhooks and refunds go on), as Part 5.1's first five
minutes ask, and reopened (``--reopen-checkout``) once no duplicate charge is left to refund.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import UTC, datetime

import stripe

from gameday.checkers.state import IntentRow
from gameday.runbooks import service
from gameday.runbooks.context import RunbookError, Runtime
from gameday.runbooks.model import Change, Diagnosis, Finding

_PAYMENTS = "SELECT id, booking_id, provider_intent_id, status FROM payments"
FROZEN = "CHECKOUT_FROZEN"
_LIMIT = 20


def _unrefunded(intent: IntentRow) -> bool:
    return intent.status == "succeeded" and intent.amount_refunded == 0


async def diagnose(rt: Runtime) -> Diagnosis:
    intents = await asyncio.to_thread(rt.intents)
    payments = await rt.rows(_PAYMENTS)
    ours = {str(p["provider_intent_id"]): p for p in payments if p["provider_intent_id"]}
    by_booking: dict[str, list[IntentRow]] = defaultdict(list)
    for intent in intents:
        if _unrefunded(intent) and intent.metadata.get("booking_id"):
            by_booking[intent.metadata["booking_id"]].append(intent)
    changes, evidence = [], []
    for booking, charged in sorted(by_booking.items(), key=lambda kv: int(kv[0])):
        if len(charged) < 2:
            continue
        tracked = [i for i in charged if i.id in ours and ours[i.id]["status"] == "succeeded"]
        keep = min(tracked or charged, key=lambda i: (i.created, i.id))
        extra = sorted((i for i in charged if i.id != keep.id), key=lambda i: i.id)
        evidence.append(
            {"booking_id": int(booking), "kept": keep.id, "refund": [i.id for i in extra]}
        )
        for i in extra:
            changes.append(
                Change(
                    "refund_intent",
                    i.id,
                    f"booking {booking} charged twice (kept {keep.id})",
                    amount_cents=i.amount,
                    currency=i.currency,
                    detail={"booking_id": int(booking), "created": i.created},
                )
            )
    divergent = []
    for intent in intents:
        p = ours.get(intent.id)
        if p is None:
            continue
        theirs = "refunded" if intent.refunded else intent.status
        if (p["status"] == "succeeded") != (theirs == "succeeded"):
            divergent.append(
                {
                    "payment_id": int(p["id"]),
                    "intent": intent.id,
                    "ours": p["status"],
                    "provider": theirs,
                }
            )
    findings = []
    if changes:
        times = [int(c.detail["created"]) for c in changes]
        window = f"{_iso(min(times))} → {_iso(max(times))}"
        findings.append(
            Finding(
                f"{len(evidence)} booking(s) charged more than once "
                f"({len(changes)} extra charge(s), {window})",
                evidence[:_LIMIT],
            )
        )
    if divergent:
        findings.append(
            Finding(
                f"{len(divergent)} payment(s) whose status differs from the provider's",
                divergent[:_LIMIT],
            )
        )
    notes = (
        [
            "status divergences are mended by the service's reconcile "
            "(`bookings reconcile --apply`), after the refunds"
        ]
        if divergent
        else []
    )
    facts: dict[str, str | bool | None] = {c.subject: "succeeded, unrefunded" for c in changes}
    invariants = {"duplicate_charges": len(changes), "status_divergences": len(divergent)}
    return Diagnosis(
        "payment-anomaly",
        [
            "succeeded, unrefunded PaymentIntents per booking at the provider",
            "our payment status against the provider's",
            "whether checkout is frozen",
        ],
        findings,
        await _checkout(rt, changes, findings, notes, facts),
        facts,
        invariants,
        notes,
    )


def _iso(unix: int) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat(timespec="seconds")


async def _checkout(
    rt: Runtime,
    refunds: list[Change],
    findings: list[Finding],
    notes: list[str],
    facts: dict[str, str | bool | None],
) -> list[Change]:
    """The refunds with a freeze before them or a reopening after them, as asked."""
    freeze, reopen = bool(rt.scope.get("freeze")), bool(rt.scope.get("reopen"))
    try:
        flags: dict[str, bool] = await service.current_flags(rt)
    except RunbookError:
        if freeze or reopen:
            raise
        flags = {}  # the state of checkout is a note here; the money is read elsewhere
    frozen = flags.get(FROZEN)
    if frozen:
        notes.append(
            f"checkout is frozen ({FROZEN}): new holds and payments get 503 until --reopen-checkout"
        )
    if freeze and not frozen:
        facts[FROZEN] = frozen
        why = "stop new charges while the duplicates are refunded"
        return [service.flag_change(FROZEN, True, why), *refunds]
    if reopen and frozen:
        if refunds:
            findings.append(
                Finding(
                    f"checkout stays frozen: {len(refunds)} duplicate charge(s) are still to "
                    "be refunded (apply them, then reopen)"
                )
            )
            return refunds
        facts[FROZEN] = frozen
        return [service.flag_change(FROZEN, False, "no duplicate charge is left to refund")]
    return refunds


async def apply(rt: Runtime, change: Change, incident: str) -> str:
    if change.action == "set_flag":
        return await service.set_flag(rt, change, incident)
    if change.action != "refund_intent":
        raise RunbookError(f"payment-anomaly cannot {change.action}")
    key = f"gameday-{incident}-refund-{change.subject}"

    def refund() -> str:
        refund = rt.stripe().v1.refunds.create(
            params={
                "payment_intent": change.subject,
                "metadata": {"incident": incident, "reason": "duplicate charge"},
            },
            options={"idempotency_key": key},
        )
        return f"refund {refund.id} {refund.status} ({refund.amount} {refund.currency})"

    try:
        return await asyncio.to_thread(refund)
    except stripe.StripeError as error:
        raise RunbookError(f"provider refused the refund: {error.user_message or error}") from None
