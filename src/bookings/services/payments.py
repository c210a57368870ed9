"""Paying for a hold: one PaymentIntent per booking, however the client retries.

The safe path:

1. *Reserve* (one transaction, booking row locked): the caller owns a live hold; the
   booking's single payment row exists (a unique index allows one); no other attempt
   holds the payment's lease. A refused reservation never reaches the provider.
2. *Create* the booking's PaymentIntent once, under a provider key derived from the
   payment id, so a crash between the provider's answer and our commit maps the retry to
   the same intent.
3. *Confirm* it with the customer's payment method, under a provider key derived from the
   payment id, the client's ``Idempotency-Key`` and the method: the same client retry is the
   same provider request, a new attempt after a decline is a new one, and a confirm of an
   intent that already succeeded is refused by the provider itself.
4. *Settle* the answer (``Settlement``), then release the lease.

The unsafe variant skips the lock, the lease and the derived keys, creating and confirming
a fresh intent per request: a double click becomes a double charge, as the harness must be
able to show.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from bookings.adapters import queries
from bookings.domain.fingerprint import derived_key
from bookings.domain.model import Booking, BookingStatus
from bookings.domain.payments import PaymentStatus
from bookings.domain.ports import CardDeclinedError, IntentSnapshot, PaymentGateway
from bookings.errors import (
    AlreadyPaid,
    Conflict,
    DbUnavailable,
    HoldExpired,
    NotFound,
    PaymentDeclined,
    PaymentInProgress,
    ProviderServerError,
    ProviderUnavailable,
)
from bookings.services.auth import Principal
from bookings.services.context import Context
from bookings.services.settlement import Applied, Settlement, key_seed

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class PaymentResult:
    payment_id: int
    booking_id: int
    status: PaymentStatus
    booking_status: BookingStatus
    amount_cents: int
    currency: str
    intent_id: str | None
    next_action_url: str | None = None


@dataclass(frozen=True, slots=True)
class _Reserved:
    booking: Booking
    payment_id: int
    status: PaymentStatus
    intent_id: str | None
    seed: str | int
    """What the payment's provider keys derive from (see ``key_seed``)."""
    generation: int = 0


class Payments:
    def __init__(self, ctx: Context, gateway: PaymentGateway, settlement: Settlement) -> None:
        self._ctx = ctx
        self._gateway = gateway
        self._settlement = settlement

    async def pay(
        self, who: Principal, booking_id: int, payment_method: str, client_key: str
    ) -> PaymentResult:
        reserved = await (self._reserve_naively if self._ctx.unsafe else self._reserve)(
            who, booking_id
        )
        try:
            return await self._charge(reserved, payment_method, client_key)
        finally:
            if not self._ctx.unsafe:
                await self._release(reserved.payment_id)

    async def _reserve(self, who: Principal, booking_id: int) -> _Reserved:
        ctx = self._ctx
        now = ctx.now()
        async with ctx.db.transaction() as conn:
            booking = _payable(
                who, booking_id, await queries.get_booking(conn, booking_id, for_update=True), now
            )
            payment = await queries.payment_for_booking(conn, booking_id, for_update=True)
            if payment is None:
                return await _insert_payment(conn, booking, now, lease_until=now + self._lease)
            status = PaymentStatus(payment.status)
            if status in (PaymentStatus.SUCCEEDED, PaymentStatus.REFUNDED):
                raise AlreadyPaid("this booking is already paid", payment_id=payment.id)
            if status is PaymentStatus.CANCELED:
                raise Conflict("this booking's payment was canceled", code="payment_canceled")
            if payment.lease_until is not None and payment.lease_until > now:
                raise PaymentInProgress("another payment attempt for this booking is running")
            await queries.update_payment(conn, payment.id, lease_until=now + self._lease)
        return _Reserved(
            booking,
            payment.id,
            status,
            payment.provider_intent_id,
            key_seed(payment),
            payment.key_generation,
        )

    async def _reserve_naively(self, who: Principal, booking_id: int) -> _Reserved:
        now = self._ctx.now()
        async with self._ctx.db.transaction() as conn:
            booking = _payable(who, booking_id, await queries.get_booking(conn, booking_id), now)
            return await _insert_payment(conn, booking, now)

    @property
    def _lease(self) -> timedelta:
        return timedelta(seconds=self._ctx.settings.payment_lease_s)

    async def _charge(self, r: _Reserved, payment_method: str, client_key: str) -> PaymentResult:
        ctx = self._ctx
        intent_id = r.intent_id
        if intent_id is not None and r.status in (
            PaymentStatus.REQUIRES_ACTION,
            PaymentStatus.PROCESSING,
        ):
            # Our record may be behind (a 3-D Secure challenge ended, an event is late).
            current = await self._gateway.retrieve(intent_id)
            applied = await self._settle(r.payment_id, current, "retrieve")
            if applied.after is not PaymentStatus.REQUIRES_PAYMENT_METHOD:
                return self._result(r, applied, current)
        ctx.metrics.payment_attempts.inc()
        try:
            answer = await self._create_and_confirm(r, intent_id, payment_method, client_key)
        except ProviderServerError:
            # The provider may have saved its 5xx under these keys: move to fresh ones, so
            # the client's retry is not answered with the same failure for 24 hours.
            async with ctx.db.transaction() as conn:
                await queries.update_payment(conn, r.payment_id, key_generation=r.generation + 1)
            ctx.metrics.payment_outcomes.labels("error").inc()
            raise
        except CardDeclinedError as declined:
            if declined.intent is not None:
                await self._settle(r.payment_id, declined.intent, "confirm")
            ctx.metrics.payment_outcomes.labels("declined").inc()
            raise PaymentDeclined(
                "the card was declined", decline_code=declined.decline_code
            ) from None
        except ProviderUnavailable:
            ctx.metrics.payment_outcomes.labels("error").inc()
            raise
        applied = await self._settle(r.payment_id, answer, "confirm")
        ctx.metrics.payment_outcomes.labels(applied.after.value).inc()
        return self._result(r, applied, answer)

    async def _create_and_confirm(
        self, r: _Reserved, intent_id: str | None, payment_method: str, client_key: str
    ) -> IntentSnapshot:
        """The provider calls, each under a key derived from what identifies it: the
        payment and its key generation (create), plus the client's key and the method
        (confirm). A retry after an unknown outcome (a crash, a lost answer) repeats the
        same keys and so finds the same intent and the same confirmation."""
        unsafe, gen = self._ctx.unsafe, r.generation
        if intent_id is None:
            intent = await self._gateway.create_intent(
                amount=r.booking.amount_cents,
                currency=r.booking.currency,
                metadata={"booking_id": str(r.booking.id), "payment_id": str(r.payment_id)},
                idempotency_key=_key(unsafe, "create", r.seed, gen),
            )
            intent_id = intent.id
            async with self._ctx.db.transaction() as conn:
                await queries.update_payment(conn, r.payment_id, provider_intent_id=intent_id)
        return await self._gateway.confirm(
            intent_id,
            payment_method=payment_method,
            idempotency_key=_key(unsafe, "confirm", r.seed, gen, client_key, payment_method),
        )

    async def _settle(self, payment_id: int, snap: IntentSnapshot, source: str) -> Applied:
        return await self._settlement.apply(
            payment_id, snap, source=f"{source}:{snap.id}", authoritative=True
        )

    def _result(self, r: _Reserved, applied: Applied, snap: IntentSnapshot) -> PaymentResult:
        return PaymentResult(
            payment_id=r.payment_id,
            booking_id=r.booking.id,
            status=applied.after,
            booking_status=applied.booking_status,
            amount_cents=r.booking.amount_cents,
            currency=r.booking.currency,
            intent_id=snap.id,
            next_action_url=snap.next_action_url
            if applied.after is PaymentStatus.REQUIRES_ACTION
            else None,
        )

    async def _release(self, payment_id: int) -> None:
        """Best effort: if the database is gone, the lease simply runs out (and the
        attempt's own outcome, not this failure, is what the caller hears)."""
        try:
            async with self._ctx.db.transaction() as conn:
                await queries.update_payment(conn, payment_id, lease_until=None)
        except DbUnavailable:
            log.warning("payment lease left to expire", payment_id=payment_id)

    async def cancel_open(self, payment_id: int) -> None:
        """Cancel an open intent at the provider (best effort: if the provider is down, a
        payment that later succeeds for a canceled booking is refunded automatically)."""
        async with self._ctx.db.transaction() as conn:
            payment = await queries.get_payment(conn, payment_id)
        if payment is None or not payment.provider_intent_id:
            return
        try:
            snap = await self._gateway.cancel_intent(
                payment.provider_intent_id, idempotency_key=derived_key("cancel", key_seed(payment))
            )
        except ProviderUnavailable:
            log.warning("open payment not canceled at the provider", payment_id=payment_id)
            return
        await self._settlement.apply(payment_id, snap, source="admin-cancel", authoritative=True)

    async def refund(self, payment_id: int) -> Applied:
        """Admin refund of a succeeded payment (its booking is canceled by settlement)."""
        async with self._ctx.db.transaction() as conn:
            payment = await queries.get_payment(conn, payment_id)
        if payment is None:
            raise NotFound(f"no payment {payment_id}", code="payment_not_found")
        if payment.status != PaymentStatus.SUCCEEDED.value or not payment.provider_intent_id:
            raise Conflict(
                f"only a succeeded payment can be refunded (this one is {payment.status})",
                code="not_refundable",
            )
        await self._gateway.refund(
            payment.provider_intent_id, idempotency_key=derived_key("refund", key_seed(payment))
        )
        self._ctx.metrics.refunds.labels("admin").inc()
        snap = IntentSnapshot(
            payment.provider_intent_id, PaymentStatus.REFUNDED, payment.amount_cents, {}
        )
        return await self._settlement.apply(
            payment_id, snap, source="admin-refund", authoritative=True
        )


def _payable(who: Principal, booking_id: int, booking: Booking | None, now: Any) -> Booking:
    if booking is None or not (who.is_admin or booking.user_id == who.user_id):
        raise NotFound(f"no booking {booking_id}", code="booking_not_found")
    if booking.status is BookingStatus.CONFIRMED:
        raise AlreadyPaid("this booking is already paid")
    if not booking.is_live_hold(now):
        raise HoldExpired("the hold on this booking has expired; hold the range again")
    return booking


async def _insert_payment(
    conn: AsyncConnection, booking: Booking, now: Any, lease_until: Any = None
) -> _Reserved:
    """A new payment row for ``booking``, with the random seed of its provider keys."""
    values = _new_payment(booking, now, lease_until)
    payment_id = await queries.insert_payment(conn, **values)
    return _Reserved(
        booking, payment_id, PaymentStatus.REQUIRES_PAYMENT_METHOD, None, values["key_seed"]
    )


def _new_payment(booking: Booking, now: Any, lease_until: Any = None) -> dict[str, Any]:
    return {
        "booking_id": booking.id,
        "status": PaymentStatus.REQUIRES_PAYMENT_METHOD.value,
        "amount_cents": booking.amount_cents,
        "currency": booking.currency,
        "lease_until": lease_until,
        "key_seed": uuid.uuid4().hex,
        "created_at": now,
        "updated_at": now,
    }


def _key(unsafe: bool, *parts: object) -> str:
    """A derived provider key — or, on the unsafe variant, a fresh one every time."""
    return uuid.uuid4().hex if unsafe else derived_key(*parts)
