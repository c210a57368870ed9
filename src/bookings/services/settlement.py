"""Applying the provider's word about a payment: the one place payment state changes.

Our confirm call's answer, a webhook event, an admin refund and the reconciliation all end
here, so the rules hold whichever arrives first or twice:

- the payment status moves by ``advance`` (events) or ``sync`` (authoritative reads);
- a payment that reaches ``succeeded`` confirms its booking if the booking is held, or is
  expired but its range is still free; otherwise (canceled, or the range was sold in the
  meantime) the payment is marked ``needs_refund`` and refunded — never paid-but-unbooked;
- a refunded payment cancels its confirmed booking;
- the confirmation email is queued once, in the same transaction.

Locks are taken in the order resource → booking → payment, the same order as the hold
path, so settlement and holds cannot deadlock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection

from bookings.adapters import queries
from bookings.adapters.flags import BOOKING_ATOMIC_LOCKING
from bookings.domain.fingerprint import derived_key
from bookings.domain.model import Booking, BookingStatus
from bookings.domain.payments import PaymentStatus, advance, sync
from bookings.domain.ports import IntentSnapshot, PaymentGateway
from bookings.errors import NotFound, ProviderUnavailable
from bookings.services.context import Context
from bookings.services.outbox import confirmation_key, enqueue_confirmation

log = structlog.get_logger("bookings.services.payments")


@dataclass(frozen=True, slots=True)
class Applied:
    payment_id: int
    booking_id: int
    before: PaymentStatus
    after: PaymentStatus
    booking_status: BookingStatus
    needs_refund: bool


class Settlement:
    def __init__(
        self,
        ctx: Context,
        gateway: PaymentGateway,
        on_email_queued: Callable[[], None] = lambda: None,
    ) -> None:
        self._ctx = ctx
        self._gateway = gateway
        self._on_email_queued = on_email_queued

    async def apply(
        self, payment_id: int, snap: IntentSnapshot, *, source: str, authoritative: bool
    ) -> Applied:
        async with self._ctx.db.transaction() as conn:
            applied = await self.apply_in(
                conn, payment_id, snap, source=source, authoritative=authoritative
            )
        if applied.needs_refund:
            applied = await self.refund_if_needed(payment_id) or applied
        return applied

    async def apply_in(
        self,
        conn: AsyncConnection,
        payment_id: int,
        snap: IntentSnapshot,
        *,
        source: str,
        authoritative: bool,
    ) -> Applied:
        """Apply ``snap`` inside the caller's transaction (webhooks commit it with the event)."""
        ctx = self._ctx
        naive = ctx.unsafe  # the unsafe variant: every report is applied, as if new
        peek = await queries.get_payment(conn, payment_id)
        if peek is None:
            raise NotFound(f"no payment {payment_id}", code="payment_not_found")
        incoming = PaymentStatus.REFUNDED if snap.refunded else snap.status
        if incoming is PaymentStatus.SUCCEEDED and not naive:
            late = await queries.get_booking(conn, peek.booking_id)
            locking = await ctx.flags.enabled(BOOKING_ATOMIC_LOCKING)
            if late and late.status is BookingStatus.EXPIRED and locking:
                await queries.lock_resource(conn, late.resource_id)
        booking = await queries.get_booking(conn, peek.booking_id, for_update=not naive)
        payment = await queries.get_payment(conn, payment_id, for_update=not naive)
        if booking is None or payment is None:  # foreign keys make this impossible
            raise NotFound(f"no payment {payment_id}", code="payment_not_found")
        before = PaymentStatus(payment.status)
        after = (sync if authoritative else advance)(before, incoming)
        now = ctx.now()
        changes: dict[str, object] = {"updated_at": now, "status": after.value}
        if snap.decline_code and after is PaymentStatus.REQUIRES_PAYMENT_METHOD:
            changes["decline_code"] = snap.decline_code[:64]
        if after is not before or naive:
            await queries.record_transition(
                conn, payment_id, old=before, new=after, source=source, now=now
            )
        booking_status, needs_refund = booking.status, bool(payment.needs_refund)
        if after is PaymentStatus.SUCCEEDED and (
            naive or booking.status is not BookingStatus.CONFIRMED
        ):
            if await self._confirm(conn, booking, now, naive=naive):
                booking_status = BookingStatus.CONFIRMED
                dedup = None if naive else confirmation_key(booking.id)
                if await enqueue_confirmation(conn, ctx, booking.id, dedup):
                    self._on_email_queued()  # early wake-up; the loop would find it anyway
                log.info("booking confirmed", booking_id=booking.id, payment_id=payment_id)
            else:
                needs_refund = changes["needs_refund"] = True
                log.warning("paid but not bookable: refunding", booking_id=booking.id)
        elif after is PaymentStatus.REFUNDED:
            needs_refund = changes["needs_refund"] = False
            # Money returned: a confirmed booking is canceled, and so is a hold (a refund
            # reported before the success must not keep the range blocked).
            if booking.status in (BookingStatus.CONFIRMED, BookingStatus.HELD):
                booking_status = BookingStatus.CANCELED
                await queries.set_booking_status(conn, booking.id, booking_status, now)
        await queries.update_payment(conn, payment_id, **changes)
        return Applied(payment_id, booking.id, before, after, booking_status, needs_refund)

    @staticmethod
    async def _confirm(
        conn: AsyncConnection, booking: Booking, now: datetime, *, naive: bool
    ) -> bool:
        """Confirm a held booking, or an expired one whose range is still free (a payment
        that outlived its hold). The change runs in a savepoint: should a racing hold take
        the range first (possible with BOOKING_ATOMIC_LOCKING off), the constraint refuses
        it and the caller refunds instead of failing."""
        if not naive:
            if booking.status is BookingStatus.EXPIRED:
                span, rid = booking.span, booking.resource_id
                if await queries.first_overlap(conn, rid, span, booking.id) is not None:
                    return False
            elif booking.status is not BookingStatus.HELD:
                return False
        try:
            async with conn.begin_nested():
                await queries.set_booking_status(conn, booking.id, BookingStatus.CONFIRMED, now)
        except sa_exc.IntegrityError:
            return False
        return True

    async def refund_if_needed(self, payment_id: int) -> Applied | None:
        """Refund a payment marked ``needs_refund``; left marked if the provider is down."""
        async with self._ctx.db.transaction() as conn:
            payment = await queries.get_payment(conn, payment_id)
        if payment is None or not payment.needs_refund or not payment.provider_intent_id:
            return None
        try:
            await self._gateway.refund(
                payment.provider_intent_id,
                idempotency_key=derived_key("auto-refund", key_seed(payment)),
            )
        except ProviderUnavailable:
            log.warning("automatic refund postponed", payment_id=payment_id)
            return None
        self._ctx.metrics.refunds.labels("unbookable").inc()
        refunded = IntentSnapshot(
            payment.provider_intent_id, PaymentStatus.REFUNDED, payment.amount_cents, {}
        )
        return await self.apply(payment_id, refunded, source="auto-refund", authoritative=True)


def key_seed(payment: Any) -> str | int:
    """The payment's random seed; its id for rows from before seeds existed."""
    seed: str | int = payment.key_seed or payment.id
    return seed
