"""``/webhooks/stripe``: the provider's events, verified before anything is read."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse

from bookings.adapters.stripe_gateway import verify_event
from bookings.api.deps import Services
from bookings.api.schemas import ERRORS, WebhookAck
from bookings.errors import InvalidRequest, WebhookRejected
from bookings.services.webhooks import ProcessingFailedError

router = APIRouter(prefix="/webhooks", tags=["webhooks"], responses=ERRORS)
_MAX_BODY = 512 * 1024


@router.post("/stripe", response_model=WebhookAck)
async def stripe_event(
    request: Request,
    c: Services,
    stripe_signature: Annotated[str, Header(alias="Stripe-Signature", max_length=2048)] = "",
) -> JSONResponse:
    """200 once the event is applied (or known already); 400 for a bad signature or stale
    timestamp (nothing is stored); 500 when processing failed, so the provider retries."""
    payload = await request.body()
    if len(payload) > _MAX_BODY:
        raise InvalidRequest("the event is too large", code="payload_too_large")
    s = c.settings
    try:
        event = verify_event(
            payload, stripe_signature, s.stripe_webhook_secret, s.webhook_tolerance_s
        )
    except WebhookRejected:
        # Forged, stale or garbage: counted, so a signature-failure spike shows in metrics.
        c.metrics.webhooks.labels("rejected").inc()
        raise
    try:
        outcome = await c.webhooks.handle(event)
    except ProcessingFailedError:
        body = {"error": "processing_failed", "message": "the event will be retried"}
        return JSONResponse(body, 500)
    return JSONResponse({"received": True, "outcome": outcome.status})
