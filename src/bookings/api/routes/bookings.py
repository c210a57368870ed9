"""``/bookings``: hold a range, read it, pay for it."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path
from fastapi.responses import JSONResponse

from bookings import errors
from bookings.adapters.flags import CHECKOUT_FROZEN, PAYMENT_IDEMPOTENCY_ENFORCED
from bookings.api.deps import Caller, LimitedCaller, Services
from bookings.api.errors import body_of, status_of
from bookings.api.schemas import ERRORS, BookingOut, HoldRequest, PaymentOut, PaymentRequest
from bookings.domain.cards import payment_method_for
from bookings.domain.fingerprint import request_fingerprint
from bookings.domain.model import TimeRange
from bookings.domain.payments import PaymentStatus
from bookings.services.idempotency import StoredAnswer

router = APIRouter(prefix="/bookings", tags=["bookings"], responses=ERRORS)
BookingId = Annotated[int, Path(ge=1, le=2**53)]
_KEY = re.compile(r"[\x21-\x7e]{1,255}")
# Answers that describe a passing moment, not the outcome of this request: never stored.
_TRANSIENT = (errors.PaymentInProgress, errors.IdempotencyInProgress)


async def _checkout_open(c: Services) -> None:
    if await c.flags.enabled(CHECKOUT_FROZEN):
        raise errors.CheckoutFrozen()


@router.post("", status_code=201)
async def hold(body: HoldRequest, c: Services, who: LimitedCaller) -> BookingOut:
    """Hold a range of a resource: 201, or 409 ``slot_taken`` if any part of it is taken
    (503 ``checkout_frozen`` while an operator has paused checkout)."""
    await _checkout_open(c)
    booking = await c.holds.hold(who, body.resource_id, TimeRange(body.starts_at, body.ends_at))
    return BookingOut.of(booking)


@router.get("/{booking_id}")
async def get_booking(booking_id: BookingId, c: Services, who: Caller) -> BookingOut:
    return BookingOut.of(await c.holds.get(who, booking_id))


@router.post(
    "/{booking_id}/payment",
    responses={200: {"model": PaymentOut}, 202: {"model": PaymentOut}},
)
async def pay(
    booking_id: BookingId,
    body: PaymentRequest,
    c: Services,
    who: LimitedCaller,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> JSONResponse:
    """Pay for a held booking. 200 when paid (the booking is confirmed), 202 while 3-D
    Secure or processing is pending, 402 when declined. Requests with the same
    ``Idempotency-Key`` get the first request's answer (``Idempotent-Replayed: true``)."""
    if idempotency_key is None or not _KEY.fullmatch(idempotency_key):
        raise errors.InvalidRequest(
            "an Idempotency-Key header (1-255 printable characters) is required",
            code="idempotency_key_required",
        )
    await _checkout_open(c)  # before the key is claimed: a paused attempt is not an answer
    method = payment_method_for(body.payment_method)
    enforced = not c.settings.unsafe_no_safeguards and await c.flags.enabled(
        PAYMENT_IDEMPOTENCY_ENFORCED
    )
    scope = str(who.user_id)
    if enforced:
        fingerprint = request_fingerprint(
            "POST", f"/bookings/{booking_id}/payment", body.model_dump()
        )
        stored = await c.keys.begin(scope, idempotency_key, fingerprint)
        if stored is not None:
            return JSONResponse(stored.body, stored.status, headers={"Idempotent-Replayed": "true"})
    try:
        answer = await _execute(c, who, booking_id, method, idempotency_key)
    except BaseException:
        if enforced:
            await c.keys.abandon(scope, idempotency_key)
        raise
    if enforced:
        await c.keys.finish(scope, idempotency_key, answer)
    return JSONResponse(answer.body, answer.status)


async def _execute(c: Services, who: Any, booking_id: int, method: str, key: str) -> StoredAnswer:
    """The answer to store: the result, or a client error that is this request's outcome."""
    try:
        result = await c.payments.pay(who, booking_id, method, key)
    except errors.ClientError as error:
        if isinstance(error, _TRANSIENT):
            raise
        return StoredAnswer(status_of(error), body_of(error))
    status = 200 if result.status is PaymentStatus.SUCCEEDED else 202
    return StoredAnswer(status, PaymentOut.of(result).model_dump(mode="json"))
