"""``/admin``: operator actions. Every route needs the admin token."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from bookings.api.deps import Admin, Services
from bookings.api.schemas import ERRORS, BookingOut, FlagUpdate, RevokeRequest

router = APIRouter(prefix="/admin", tags=["admin"], responses=ERRORS)
Id = Annotated[int, Path(ge=1, le=2**53)]
EventId = Annotated[str, Path(min_length=1, max_length=255, pattern=r"^[^\x00]+$")]
FlagName = Annotated[str, Path(min_length=1, max_length=64)]


def _actor(who: Any) -> str:
    return f"admin:{who.user_id}"


@router.post("/bookings/{booking_id}/cancel")
async def cancel_booking(booking_id: Id, c: Services, who: Admin) -> BookingOut:
    """Cancel a booking; a paid one is refunded first."""
    return BookingOut.of(await c.admin.cancel_booking(booking_id, _actor(who)))


@router.post("/payments/{payment_id}/refund")
async def refund_payment(payment_id: Id, c: Services, who: Admin) -> dict[str, Any]:
    """Refund a succeeded payment in full; its booking is canceled."""
    status = await c.admin.refund_payment(payment_id, _actor(who))
    return {"payment_id": payment_id, "status": status.value}


@router.post("/bookings/{booking_id}/resend-confirmation", status_code=202)
async def resend_confirmation(booking_id: Id, c: Services, who: Admin) -> dict[str, Any]:
    await c.admin.resend_confirmation(booking_id, _actor(who))
    return {"booking_id": booking_id, "queued": True}


@router.get("/webhooks/failed")
async def failed_webhooks(c: Services, _: Admin) -> list[dict[str, Any]]:
    """The dead-letter list: events whose processing failed, with attempts and last error."""
    return await c.admin.failed_webhooks()


@router.post("/webhooks/{event_id}/replay")
async def replay_webhook(event_id: EventId, c: Services, who: Admin) -> dict[str, Any]:
    """Process a stored event again (dedup still applies: a processed event stays applied)."""
    outcome = await c.admin.replay_webhook(event_id, _actor(who))
    return {"event_id": outcome.event_id, "outcome": outcome.status}


@router.get("/flags")
async def get_flags(c: Services, _: Admin) -> dict[str, bool]:
    return await c.flags.refresh()


@router.put("/flags/{name}")
async def set_flag(name: FlagName, body: FlagUpdate, c: Services, who: Admin) -> dict[str, bool]:
    """Flip a feature flag at runtime; every worker sees it within the flag cache TTL."""
    return await c.admin.set_flag(name, body.enabled, _actor(who))


@router.post("/users/{user_id}/revoke-tokens")
async def revoke_tokens(
    user_id: Id, body: RevokeRequest, c: Services, who: Admin
) -> dict[str, Any]:
    """Refuse every token the user was issued until now (access and refresh; 401
    ``token_revoked``). A new login is not refused: if the password leaked, lock the
    account (``/lock``) until its owner resets it."""
    at = await c.admin.revoke_tokens(user_id, _actor(who), body.reason)
    return {"user_id": user_id, "tokens_valid_after": at.isoformat()}


@router.post("/users/{user_id}/lock")
async def lock_account(user_id: Id, body: RevokeRequest, c: Services, who: Admin) -> dict[str, Any]:
    """Revoke every token of the user and refuse their logins (403 ``account_locked``) until
    unlocked: containment for a leaked password until its owner resets it."""
    at = await c.admin.lock_account(user_id, _actor(who), body.reason)
    return {"user_id": user_id, "tokens_valid_after": at.isoformat(), "locked": True}


@router.post("/users/{user_id}/unlock")
async def unlock_account(
    user_id: Id, body: RevokeRequest, c: Services, who: Admin
) -> dict[str, Any]:
    """Accept the user's logins again (tokens revoked before stay revoked)."""
    await c.admin.unlock_account(user_id, _actor(who), body.reason)
    return {"user_id": user_id, "locked": False}
