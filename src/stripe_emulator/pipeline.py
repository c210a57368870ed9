"""How one API request is handled, in Stripe's order of operations.

authenticate → injected pre-execution faults (429, retryable 5xx: nothing saved) →
idempotency (replay, 409 in use, 400 mismatch) → validate parameters (failure: key released)
→ [latency] → execute (or an injected, saved 500) → save the response under the key →
answer, or drop the connection after processing (the fault that makes idempotency matter).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable, Mapping
from typing import TypeAlias

import orjson
import structlog
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stripe_emulator.emulator import Emulator
from stripe_emulator.errors import (
    ApiError,
    AuthenticationError,
    EmulatorError,
    RateLimitError,
)
from stripe_emulator.events import RequestInfo, current_request
from stripe_emulator.forms import Params, decode, fingerprint
from stripe_emulator.objects import JSON
from stripe_emulator.render import compact_json

Execute: TypeAlias = Callable[[], JSON]
Op: TypeAlias = Callable[[Emulator, Params, Mapping[str, str]], Execute]
DROP_FLAG = "stripe_emulator.drop"
REQUEST_ID = "stripe_emulator.request_id"
log = structlog.get_logger(__name__)


def request_id_of(request: Request) -> str | None:
    value = request.scope.get(REQUEST_ID)
    return value if isinstance(value, str) else None


def api_key(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, credential = header.partition(" ")
    if scheme.lower() == "basic":
        try:
            credential = base64.b64decode(credential).decode().partition(":")[0]
        except ValueError:
            credential = ""
    elif scheme.lower() != "bearer":
        credential = ""
    if not credential:
        raise AuthenticationError(
            "You did not provide an API key. You need to provide your API key in the "
            "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
            "YOUR_SECRET_KEY')."
        )
    if credential.startswith("sk_live_"):
        raise AuthenticationError(
            "This emulator accepts test-mode keys only (sk_test_...); a live-mode key was refused.",
            code="api_key_expired",
        )
    if not credential.startswith("sk_test_") or len(credential) < 12:
        raise AuthenticationError(
            f"Invalid API Key provided: {credential[:8]}{'*' * 8}", code="invalid_api_key"
        )
    return credential


def respond(
    status: int, body: bytes, request_id: str, extra: Mapping[str, str] | None = None
) -> Response:
    headers = {"Request-Id": request_id, "Stripe-Version": "2025-09-30.clover"}
    headers.update(extra or {})
    return Response(body, status, headers, media_type="application/json")


def error_response(
    exc: EmulatorError, request_id: str, extra: Mapping[str, str] | None = None
) -> Response:
    return respond(exc.status, orjson.dumps(exc.envelope()), request_id, extra)


def endpoint(op: Op) -> Callable[[Request], object]:
    async def handle(request: Request) -> Response:
        emu: Emulator = request.app.state.emulator
        request_id = emu.state.ids.new("req")
        request.scope[REQUEST_ID] = request_id
        try:
            api_key(request)
            if request.method == "POST":
                return await _post(emu, op, request, request_id)
            execute = _validated(emu, op, request, request.url.query.encode())
        except EmulatorError as exc:
            return error_response(exc, request_id)
        status, body, _ = _outcome(execute)
        return respond(status, body, request_id)

    return handle


def _validated(emu: Emulator, op: Op, request: Request, raw: bytes) -> Execute:
    """Parse and validate; the returned thunk is the endpoint's execution."""
    params = Params(decode(raw))
    execute = op(emu, params, request.path_params)
    params.finish()
    return execute


async def _post(emu: Emulator, op: Op, request: Request, request_id: str) -> Response:
    faults = emu.state.faults
    injected = faults.inject_error()
    config = faults.config
    retry_header = (
        {}
        if config.should_retry is None
        else {"Stripe-Should-Retry": str(config.should_retry).lower()}
    )
    if injected and (config.error_status == 429 or config.should_retry):
        return error_response(_injected(config.error_status), request_id, retry_header)
    raw = await request.body()
    key = None if config.ignore_idempotency_keys else request.headers.get("idempotency-key")
    saved = None
    if key is not None:
        path = request.url.path
        saved = emu.idempotency.begin(key, "POST", path, fingerprint("POST", path, raw))
    if saved is not None and saved.status is not None:
        headers = {"Idempotent-Replayed": "true", "Idempotency-Key": key or ""}
        status, body = saved.status, saved.body
    else:
        token = current_request.set(RequestInfo(request_id, key))
        try:
            error_status = config.error_status if injected else None
            status, body, headers = await _run(emu, op, request, raw, key, error_status)
        finally:
            current_request.reset(token)
        if injected and status >= 500:
            headers.update(retry_header)
    if faults.drop_connection():
        request.scope[DROP_FLAG] = True
    return respond(status, body, request_id, headers)


async def _run(  # noqa: PLR0917 - the parts of one request, passed once from _post
    emu: Emulator, op: Op, request: Request, raw: bytes, key: str | None, error_status: int | None
) -> tuple[int, bytes, dict[str, str]]:
    """Validate (a failure saves nothing), then execute and save whatever comes out."""
    try:
        execute = _validated(emu, op, request, raw)
        delay = emu.state.faults.latency_s()
        if delay:
            await asyncio.sleep(delay)
    except BaseException:  # validation failed or the request was cancelled: never executed
        if key is not None:
            emu.idempotency.abandon(key)
        raise
    status, body, headers = _outcome(execute, error_status)
    if key is not None:
        emu.idempotency.finish(key, status, body)
        headers["Idempotency-Key"] = key
    return status, body, headers


def _outcome(
    execute: Execute, error_status: int | None = None
) -> tuple[int, bytes, dict[str, str]]:
    """Run the endpoint (or the injected failure in its place); every outcome is an answer."""
    try:
        if error_status is not None:
            raise _injected(error_status)
        return 200, compact_json(execute()), {}
    except EmulatorError as exc:
        return exc.status, compact_json(exc.envelope()), {}
    except Exception:
        log.exception("request_crashed")
        return 500, compact_json(ApiError("An unknown error occurred.").envelope()), {}


def _injected(status: int) -> EmulatorError:
    if status == 429:
        return RateLimitError(
            "Too many requests hit the API too quickly (injected by the emulator).",
            code="rate_limit",
        )
    return ApiError("An unknown error occurred (injected by the emulator).", status=status)


class DropConnection:
    """Outermost ASGI wrapper: when a handler flags its request, abort the TCP connection
    instead of sending the (already saved) response, so the client sees a lost answer.

    Needs the server's own ``send``; under uvicorn that is a bound method of the request
    cycle, which holds the transport. Elsewhere it falls back to closing mid-response.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        dropped = False

        async def guarded_send(message: Message) -> None:
            nonlocal dropped
            if dropped:
                return
            if message["type"] == "http.response.start" and scope.get(DROP_FLAG):
                dropped = True
                transport = getattr(getattr(send, "__self__", None), "transport", None)
                if transport is not None:
                    transport.abort()
                    await asyncio.sleep(0)  # let the server see the connection is gone
                    return
                await send(message)
                return
            await send(message)

        await self.app(scope, receive, guarded_send)
