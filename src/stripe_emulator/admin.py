"""Test-only routes under ``/_emulator``: faults, clock, reset, ledger, 3DS outcomes.

Guarded by the same test-mode key check as the API; bodies are JSON, errors use Stripe's
envelope so one client-side error path handles both.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from stripe_emulator import render
from stripe_emulator.emulator import Emulator
from stripe_emulator.errors import EmulatorError, ValidationError
from stripe_emulator.faults import FaultConfig
from stripe_emulator.pipeline import api_key, error_response, respond

Handler = Callable[[Emulator, Request], Awaitable[Any]]


def admin(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def handle(request: Request) -> Response:
        emu: Emulator = request.app.state.emulator
        request_id = emu.state.ids.new("req")
        try:
            api_key(request)
            body = await handler(emu, request)
        except EmulatorError as exc:
            return error_response(exc, request_id)
        return respond(200, orjson.dumps(body), request_id)

    return handle


async def _json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ValidationError("The body must be a JSON object.") from None
    if not isinstance(data, dict):
        raise ValidationError("The body must be a JSON object.")
    return data


async def health(request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


async def get_faults(emu: Emulator, request: Request) -> Any:
    return {
        "faults": emu.state.faults.config.to_json(),
        "webhook_down_until": emu.state.faults.webhook_down_until,
        "injected_errors": emu.state.faults.injected_errors,
        "dropped_connections": emu.state.faults.dropped_connections,
    }


async def set_faults(emu: Emulator, request: Request) -> Any:
    emu.set_faults(FaultConfig.from_json(await _json(request)))
    return await get_faults(emu, request)


async def clear_faults(emu: Emulator, request: Request) -> Any:
    emu.state.faults.clear()
    return await get_faults(emu, request)


async def reset(emu: Emulator, request: Request) -> Any:
    emu.reset()
    return {"reset": True}


async def get_clock(emu: Emulator, request: Request) -> Any:
    return {"now": emu.clock.now(), "speed": emu.clock.speed}


async def advance_clock(emu: Emulator, request: Request) -> Any:
    advance = (await _json(request)).get("advance")
    if not isinstance(advance, int | float) or isinstance(advance, bool) or advance < 0:
        raise ValidationError("advance must be a non-negative number of seconds", param="advance")
    emu.clock.advance(float(advance))
    return await get_clock(emu, request)


async def ledger(emu: Emulator, request: Request) -> Any:
    return emu.ledger()


async def deliveries(emu: Emulator, request: Request) -> Any:
    event = request.query_params.get("event")
    rows = [a for a in emu.dispatcher.attempts if event is None or a["event"] == event]
    pending = sum(1 for e in emu.state.log.events if e.pending)
    return {"attempts": rows, "events_pending": pending, "scheduled_timers": len(emu.scheduler)}


async def authenticate(emu: Emulator, request: Request) -> Any:
    outcome = (await _json(request)).get("outcome", "succeed")
    if outcome not in ("succeed", "fail"):
        raise ValidationError("outcome must be 'succeed' or 'fail'", param="outcome")
    pi = emu.state.payment_intents.get(request.path_params["id"])
    return render.payment_intent(emu.payments.authenticate(pi, outcome == "succeed"))
