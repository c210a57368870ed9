"""What an operator does during an incident: cancel, refund, resend, replay, flip flags,
revoke a user's tokens.

Every action is written to the audit log with the actor, so the drill's timeline can show
who changed what.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa

from bookings.adapters import queries
from bookings.adapters.flags import FlagStore
from bookings.adapters.tables import audit_log
from bookings.domain.model import Booking
from bookings.domain.payments import OPEN, PaymentStatus
from bookings.errors import AlreadyPaid, Conflict, NotFound
from bookings.services.context import Context
from bookings.services.holds import Holds
from bookings.services.outbox import Outbox, enqueue_confirmation
from bookings.services.payments import Payments
from bookings.services.revocation import Revocations
from bookings.services.webhooks import Outcome, Webhooks


class Admin:
    def __init__(
        self,
        ctx: Context,
        *,
        holds: Holds,
        payments: Payments,
        webhooks: Webhooks,
        outbox: Outbox,
        flags: FlagStore,
        revocations: Revocations,
    ) -> None:
        self._ctx = ctx
        self._holds = holds
        self._payments = payments
        self._webhooks = webhooks
        self._outbox = outbox
        self._flags = flags
        self._revocations = revocations

    async def audit(self, actor: str, action: str, subject: str, **detail: Any) -> None:
        async with self._ctx.db.transaction() as conn:
            await conn.execute(
                sa.insert(audit_log).values(
                    at=self._ctx.now(),
                    actor=actor[:64],
                    action=action,
                    subject=subject[:128],
                    detail=orjson.dumps(detail, default=str).decode(),
                )
            )

    async def cancel_booking(self, booking_id: int, actor: str) -> Booking:
        """Cancel. A paid booking is refunded (settlement then cancels it); an open payment
        (3-D Secure pending) is canceled at the provider, so a late challenge cannot charge."""
        try:
            booking, payment = await self._holds.cancel(booking_id)
        except AlreadyPaid as paid:
            await self._payments.refund(int(paid.details["payment_id"]))
            booking, payment = await self._holds.cancel(booking_id)
        if payment is not None and PaymentStatus(payment.status) in OPEN:
            await self._payments.cancel_open(payment.id)
        await self.audit(actor, "cancel_booking", f"booking:{booking_id}", status=booking.status)
        return booking

    async def refund_payment(self, payment_id: int, actor: str) -> PaymentStatus:
        applied = await self._payments.refund(payment_id)
        await self.audit(actor, "refund_payment", f"payment:{payment_id}")
        return applied.after

    async def resend_confirmation(self, booking_id: int, actor: str) -> None:
        async with self._ctx.db.transaction() as conn:
            booking = await queries.get_booking(conn, booking_id)
            if booking is None:
                raise NotFound(f"no booking {booking_id}", code="booking_not_found")
            if booking.status.value != "confirmed":
                raise Conflict("only a confirmed booking has a confirmation", code="not_confirmed")
            key = f"booking-confirmed-{booking_id}-resend-{uuid.uuid4().hex}"
            await enqueue_confirmation(conn, self._ctx, booking_id, key)
        self._outbox.wakeup.set()
        await self.audit(actor, "resend_confirmation", f"booking:{booking_id}")

    async def failed_webhooks(self) -> list[dict[str, Any]]:
        return await self._webhooks.failed()

    async def replay_webhook(self, event_id: str, actor: str) -> Outcome:
        outcome = await self._webhooks.replay(event_id)
        await self.audit(actor, "replay_webhook", f"event:{event_id}", outcome=outcome.status)
        return outcome

    async def set_flag(self, name: str, enabled: bool, actor: str) -> dict[str, bool]:
        await self._flags.set(name, enabled, actor=actor, now=self._ctx.now())
        await self.audit(actor, "set_flag", f"flag:{name}", enabled=enabled)
        return await self._flags.all()

    async def revoke_tokens(self, user_id: int, actor: str, reason: str) -> datetime:
        at = await self._revocations.revoke(user_id)
        await self.audit(actor, "revoke_tokens", f"user:{user_id}", reason=reason)
        return at

    async def lock_account(self, user_id: int, actor: str, reason: str) -> datetime:
        at = await self._revocations.revoke(user_id, lock=True)
        await self.audit(actor, "lock_account", f"user:{user_id}", reason=reason)
        return at

    async def unlock_account(self, user_id: int, actor: str, reason: str) -> None:
        await self._revocations.unlock(user_id)
        await self.audit(actor, "unlock_account", f"user:{user_id}", reason=reason)
