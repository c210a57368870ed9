"""The payment provider through the official ``stripe`` SDK (async, httpx transport).

Pointing the service at Stripe's test mode instead of the emulator is a change of
``BOOKINGS_STRIPE_API_BASE`` and the key. Retries are the SDK's own: bounded
(``max_network_retries``), exponential backoff with jitter, honouring
``Stripe-Should-Retry``, and always with the same ``Idempotency-Key`` — so a retry can never
become a second charge. Around that sits a breaker: once the provider keeps failing,
payments answer ``payment_provider_unavailable`` at once instead of queueing on timeouts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import orjson
import stripe
import structlog

from bookings.adapters.breaker import CircuitBreaker
from bookings.domain.payments import parse_status
from bookings.domain.ports import CardDeclinedError, IntentSnapshot
from bookings.errors import (
    InvalidRequest,
    ProviderServerError,
    ProviderUnavailable,
    WebhookRejected,
)
from bookings.settings import Settings

T = TypeVar("T")
log = structlog.get_logger(__name__)


def snapshot(pi: Any) -> IntentSnapshot:
    """Our view of a PaymentIntent object (from the API or a webhook event's payload)."""
    if isinstance(pi, stripe.StripeObject):
        pi = pi.to_dict()
    error = pi.get("last_payment_error") or {}
    action = pi.get("next_action") or {}
    redirect = action.get("redirect_to_url") or {}
    charge = pi.get("latest_charge")
    refunded = bool(isinstance(charge, Mapping) and charge.get("refunded"))
    return IntentSnapshot(
        id=str(pi["id"]),
        status=parse_status(str(pi["status"])),
        amount=int(pi.get("amount") or 0),
        metadata={str(k): str(v) for k, v in (pi.get("metadata") or {}).items()},
        decline_code=error.get("decline_code") or error.get("code"),
        next_action_url=redirect.get("url"),
        refunded=refunded,
    )


def _nothing_saved(error: stripe.StripeError) -> bool:
    """Stripe promises that a retry with the same key may succeed."""
    headers = {k.lower(): v for k, v in (error.headers or {}).items()}
    return headers.get("stripe-should-retry") == "true"


class StripeGateway:
    def __init__(self, settings: Settings, breaker: CircuitBreaker) -> None:
        self._http = stripe.HTTPXClient(timeout=settings.provider_timeout_s)
        self.client = stripe.StripeClient(
            settings.stripe_api_key,
            base_addresses={"api": settings.stripe_api_base},
            max_network_retries=settings.provider_max_retries,
            http_client=self._http,
        )
        self.breaker = breaker

    async def _call(self, fn: Callable[[], Awaitable[T]]) -> T:
        if not self.breaker.allow():
            raise ProviderUnavailable("the payment provider is failing; retry shortly")
        try:
            result = await fn()
        except stripe.CardError:
            self.breaker.record_success()
            raise
        except (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError) as error:
            # Connection trouble, 429 or 5xx, after the SDK's own retries.
            self.breaker.record_failure()
            log.warning(
                "payment provider call failed",
                error=type(error).__name__,
                status=error.http_status,
                detail=str(error)[:200],
            )
            if isinstance(error, stripe.APIError) and not _nothing_saved(error):
                raise ProviderServerError() from error
            raise ProviderUnavailable() from error
        except stripe.StripeError as error:
            # 4xx other than a decline: our request was wrong, the provider is fine.
            self.breaker.record_success()
            if error.http_status == 409:  # a concurrent request holds the key: transient
                raise ProviderUnavailable("the payment is being processed; retry") from error
            raise
        self.breaker.record_success()
        return result

    async def create_intent(
        self, *, amount: int, currency: str, metadata: Mapping[str, str], idempotency_key: str
    ) -> IntentSnapshot:
        params: Any = {"amount": amount, "currency": currency, "metadata": dict(metadata)}
        pi = await self._call(
            lambda: self.client.v1.payment_intents.create_async(
                params=params, options={"idempotency_key": idempotency_key}
            )
        )
        return snapshot(pi)

    async def confirm(
        self, intent_id: str, *, payment_method: str, idempotency_key: str
    ) -> IntentSnapshot:
        params: Any = {
            "payment_method": payment_method,
            "return_url": "https://bookings.invalid/payments/return",
        }
        try:
            pi = await self._call(
                lambda: self.client.v1.payment_intents.confirm_async(
                    intent_id, params=params, options={"idempotency_key": idempotency_key}
                )
            )
        except stripe.CardError as error:
            body: Any = error.json_body or {}
            details = body.get("error") or {}
            intent = details.get("payment_intent")
            raise CardDeclinedError(
                snapshot(intent) if intent else None,
                str(details.get("decline_code") or error.code or "card_declined"),
                str(details.get("message") or "the card was declined"),
            ) from None
        except stripe.InvalidRequestError as error:
            if error.code == "payment_intent_unexpected_state":
                # Already succeeded or canceled: the caller re-reads the intent's state.
                return await self.retrieve(intent_id)
            raise InvalidRequest("the payment method was refused by the provider") from error
        return snapshot(pi)

    async def retrieve(self, intent_id: str) -> IntentSnapshot:
        pi = await self._call(
            lambda: self.client.v1.payment_intents.retrieve_async(
                intent_id, params={"expand": ["latest_charge"]}
            )
        )
        return snapshot(pi)

    async def refund(self, intent_id: str, *, idempotency_key: str) -> None:
        params: Any = {"payment_intent": intent_id}
        try:
            await self._call(
                lambda: self.client.v1.refunds.create_async(
                    params=params, options={"idempotency_key": idempotency_key}
                )
            )
        except stripe.InvalidRequestError as error:
            if error.code != "charge_already_refunded":
                raise

    async def cancel_intent(self, intent_id: str, *, idempotency_key: str) -> IntentSnapshot:
        try:
            pi = await self._call(
                lambda: self.client.v1.payment_intents.cancel_async(
                    intent_id, options={"idempotency_key": idempotency_key}
                )
            )
        except stripe.InvalidRequestError as error:
            if error.code != "payment_intent_unexpected_state":
                raise
            return await self.retrieve(intent_id)  # succeeded or canceled already
        return snapshot(pi)

    async def list_intents(self, limit: int) -> Sequence[IntentSnapshot]:
        """Every intent, newest first, up to ``limit`` (the reconciliation's bound)."""
        found: list[IntentSnapshot] = []
        params: dict[str, Any] = {"limit": 100, "expand": ["data.latest_charge"]}
        while len(found) < limit:
            page = await self._call(
                lambda: self.client.v1.payment_intents.list_async(params=params)  # type: ignore[arg-type]
            )
            found.extend(snapshot(pi) for pi in page.data)
            if not page.has_more or not page.data:
                break
            params["starting_after"] = page.data[-1].id
        return found[:limit]

    async def ping(self) -> None:
        await self._call(lambda: self.client.v1.payment_intents.list_async(params={"limit": 1}))

    async def close(self) -> None:
        await self._http.close_async()  # type: ignore[no-untyped-call]


def verify_event(payload: bytes, signature: str, secret: str, tolerance_s: int) -> Any:
    """The event as plain JSON, if ``Stripe-Signature`` is valid and fresh."""
    try:
        stripe.WebhookSignature.verify_header(
            payload.decode("utf-8"), signature, secret, tolerance=tolerance_s
        )
        event = orjson.loads(payload)
        if not isinstance(event, dict) or not {"id", "type", "data"} <= event.keys():
            raise ValueError("not an event")
    except stripe.SignatureVerificationError as error:
        stale = "tolerance" in str(error).lower()
        raise WebhookRejected(
            "the webhook timestamp is too old" if stale else "the webhook signature is invalid",
            code="stale_signature" if stale else "invalid_signature",
        ) from None
    except (ValueError, UnicodeDecodeError):
        raise WebhookRejected(
            "the webhook payload is not an event", code="invalid_payload"
        ) from None
    return event
