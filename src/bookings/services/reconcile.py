"""Reconciliation: our payments against the provider's PaymentIntents.

The provider is the record of money; our tables are the record of bookings. ``compare`` is
a pure function over one booking's intents and payment rows; ``Reconciler`` reads both
sides, reports every divergence and, with ``apply``, mends what can be mended safely:

- ``duplicate_charge``: more than one succeeded intent for a booking → refund the extras
  (the one our payment row points at is kept);
- ``untracked_charge``: a succeeded intent for a booking that we have no payment row for
  → refund it;
- ``paid_not_recorded``: the provider succeeded or refunded, our payment lags → settle it
  (which confirms the booking, or refunds if the range is gone);
- ``paid_not_booked``: succeeded on both sides, but the booking is not confirmed and no
  refund is pending → settle again;
- ``recorded_not_paid``: our payment says succeeded, the provider does not → report only:
  a human must look.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import sqlalchemy as sa
import structlog

from bookings.adapters import queries
from bookings.adapters.tables import bookings, payments
from bookings.domain.fingerprint import derived_key
from bookings.domain.payments import PaymentStatus
from bookings.domain.ports import IntentSnapshot, PaymentGateway
from bookings.services.context import Context
from bookings.services.settlement import Settlement

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class OurPayment:
    id: int
    booking_id: int
    intent_id: str | None
    status: str
    booking_status: str
    needs_refund: bool


@dataclass(frozen=True, slots=True)
class Fix:
    action: Literal["settle", "refund"]
    intent: IntentSnapshot
    payment_id: int | None


@dataclass
class Divergence:
    kind: str
    booking_id: int
    intent_id: str | None
    ours: str | None
    theirs: str | None
    fixed: bool = False


@dataclass
class ReconcileReport:
    intents_seen: int = 0
    payments_seen: int = 0
    divergences: list[Divergence] = field(default_factory=list)

    @property
    def unresolved(self) -> list[Divergence]:
        return [d for d in self.divergences if not d.fixed]


def _state(snap: IntentSnapshot) -> str:
    return PaymentStatus.REFUNDED.value if snap.refunded else snap.status.value


def _paid(snap: IntentSnapshot) -> bool:
    return _state(snap) == PaymentStatus.SUCCEEDED.value


def compare(
    booking_id: int,
    theirs: Sequence[IntentSnapshot],
    ours: Sequence[OurPayment],
    *,
    listing_complete: bool = True,
) -> list[tuple[Divergence, Fix | None]]:
    rows = {p.intent_id: p for p in ours if p.intent_id}
    paid = [s for s in theirs if _paid(s)]
    keep = next((s for s in paid if s.id in rows), paid[0] if paid else None)
    found: list[tuple[Divergence, Fix | None]] = []

    def add(kind: str, snap: IntentSnapshot, row: OurPayment | None, fix: Fix | None) -> None:
        ours_state = row.status if row else None
        found.append((Divergence(kind, booking_id, snap.id, ours_state, _state(snap)), fix))

    for snap in theirs:
        row = rows.get(snap.id)
        row_id = row.id if row else None
        if _paid(snap) and snap is not keep:
            add("duplicate_charge", snap, row, Fix("refund", snap, row_id))
        elif row is None:
            if _paid(snap):
                add("untracked_charge", snap, row, Fix("refund", snap, None))
        elif _state(snap) in ("succeeded", "refunded") and row.status != _state(snap):
            add("paid_not_recorded", snap, row, Fix("settle", snap, row.id))
        elif _paid(snap) and row.booking_status != "confirmed" and not row.needs_refund:
            add("paid_not_booked", snap, row, Fix("settle", snap, row.id))
    listed = {s.id: s for s in theirs}
    for row in ours:
        seen = listed.get(row.intent_id or "")
        if row.status != "succeeded" or (seen is None and not listing_complete):
            continue
        if seen is None or seen.status is not PaymentStatus.SUCCEEDED:
            theirs_state = seen.status.value if seen else None
            divergence = Divergence(
                "recorded_not_paid", booking_id, row.intent_id, row.status, theirs_state
            )
            found.append((divergence, None))
    return found


class Reconciler:
    def __init__(self, ctx: Context, gateway: PaymentGateway, settlement: Settlement) -> None:
        self._ctx = ctx
        self._gateway = gateway
        self._settlement = settlement

    async def run(self, *, apply: bool, limit: int = 10_000) -> ReconcileReport:
        intents = await self._gateway.list_intents(limit)
        theirs: dict[int, list[IntentSnapshot]] = defaultdict(list)
        for snap in intents:
            if snap.metadata.get("booking_id", "").isdigit():
                theirs[int(snap.metadata["booking_id"])].append(snap)
        rows = await self._our_payments(list(theirs), limit)
        ours: dict[int, list[OurPayment]] = defaultdict(list)
        for row in rows:
            ours[row.booking_id].append(row)
        report = ReconcileReport(intents_seen=len(intents), payments_seen=len(rows))
        complete = len(intents) < limit
        for booking_id in sorted(set(theirs) | set(ours)):
            for divergence, fix in compare(
                booking_id, theirs[booking_id], ours[booking_id], listing_complete=complete
            ):
                if apply and fix is not None:
                    divergence.fixed = await self._fix(fix, divergence)
                report.divergences.append(divergence)
        return report

    async def _our_payments(self, booking_ids: list[int], limit: int) -> list[OurPayment]:
        query = (
            sa.select(payments, bookings.c.status.label("booking_status"))
            .join(bookings, bookings.c.id == payments.c.booking_id)
            .where(
                sa.or_(
                    payments.c.booking_id.in_(booking_ids),
                    payments.c.status == PaymentStatus.SUCCEEDED.value,
                )
            )
            .limit(limit)
        )
        async with self._ctx.db.transaction() as conn:
            return [
                OurPayment(r.id, r.booking_id, r.provider_intent_id, r.status, r.booking_status,
                           bool(r.needs_refund))
                for r in await conn.execute(query)
            ]  # fmt: skip

    async def _fix(self, fix: Fix, divergence: Divergence) -> bool:
        try:
            if fix.action == "settle" and fix.payment_id is not None:
                await self._settlement.apply(
                    fix.payment_id, fix.intent, source="reconcile", authoritative=True
                )
            else:
                key = derived_key("reconcile-refund", fix.intent.id)
                await self._gateway.refund(fix.intent.id, idempotency_key=key)
                if fix.payment_id is not None:
                    await self._mark_refunded(fix.payment_id)
                self._ctx.metrics.refunds.labels(divergence.kind).inc()
        except Exception:
            log.exception("reconciliation fix failed", kind=divergence.kind)
            return False
        log.info("reconciliation fixed", kind=divergence.kind, booking_id=divergence.booking_id)
        return True

    async def _mark_refunded(self, payment_id: int) -> None:
        """A duplicate's refund must not cancel the booking its kept charge paid for."""
        now = self._ctx.now()
        async with self._ctx.db.transaction() as conn:
            row = await queries.get_payment(conn, payment_id, for_update=True)
            if row is None or row.status == PaymentStatus.REFUNDED.value:
                return
            await queries.update_payment(conn, payment_id, status="refunded", updated_at=now)
            await queries.record_transition(
                conn, payment_id, old=PaymentStatus(row.status), new=PaymentStatus.REFUNDED,
                source="reconcile-duplicate-refund", now=now,
            )  # fmt: skip
