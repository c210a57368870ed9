"""The running stack's control API, so ``gameday fault …`` and ``gameday stack status|down``
in another terminal act on the stack that ``gameday stack up`` holds.

Faults are injected by the stack's owner, never by the short-lived CLI process, because
the owner is what guarantees healing (deadline watcher, exit, signals). The API listens on
127.0.0.1 only and wants the token written in the stack's private ``state.json``.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import secrets
import signal
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gameday.faults import FaultError, build
from gameday.stack.processes import StartError, free_port
from gameday.stack.stack import Stack

Handler = Callable[[Request, dict[str, Any]], Response]


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status)


def create_app(stack: Stack, token: str, on_down: Callable[[], None]) -> Starlette:
    """Handlers are plain functions run on a worker thread: injecting a fault restarts
    processes and talks to the proxy, which must not stall the API's event loop."""

    def guarded(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            given = request.headers.get("x-stack-token", "")
            if not hmac.compare_digest(given.encode(), token.encode()):
                return _error(401, "unauthorized", "missing or wrong X-Stack-Token")
            try:
                body = await _json(request) if request.method == "POST" else {}
                return await asyncio.to_thread(handler, request, body)
            except FaultError as error:
                return _error(422, "fault_error", str(error))

        return run

    def status(request: Request, body: dict[str, Any]) -> Response:
        health = {name: worker.health()[0] for name, worker in stack.workers.items()}
        faults = stack.faults.active() if stack.faults else []
        return JSONResponse({**stack.state(), "ready": health,
                             "faults": [f.describe() for f in faults]})  # fmt: skip

    def faults(request: Request, body: dict[str, Any]) -> Response:
        registry = stack.faults
        if registry is None:
            return _error(409, "stopping", "the stack is shutting down")
        if request.method == "GET":
            return JSONResponse([f.describe() for f in registry.active()])
        if request.method == "DELETE":
            return JSONResponse({"errors": registry.heal_all()})
        params = body.get("params") or {}
        if not isinstance(params, dict):
            raise FaultError("params must be an object")
        try:
            duration = float(body.get("duration_s", 60))
        except (TypeError, ValueError):
            raise FaultError("duration_s must be a number") from None
        fault = build(str(body.get("kind", "")), str(body.get("target", "")), params)
        return JSONResponse(registry.inject(fault, duration).describe(), 201)

    def one_fault(request: Request, body: dict[str, Any]) -> Response:
        if stack.faults is None:
            return _error(409, "stopping", "the stack is shutting down")
        try:
            entry = stack.faults.heal(request.path_params["fault_id"])
        except FaultError as error:
            return _error(404, "not_found", str(error))
        return JSONResponse(entry.describe())

    def down(request: Request, body: dict[str, Any]) -> Response:
        on_down()
        return JSONResponse({"stopping": True}, 202)

    return Starlette(routes=[
        Route("/status", guarded(status)),
        Route("/faults", guarded(faults), methods=["GET", "POST", "DELETE"]),
        Route("/faults/{fault_id}", guarded(one_fault), methods=["DELETE"]),
        Route("/down", guarded(down), methods=["POST"]),
    ])  # fmt: skip


async def _json(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise FaultError("the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise FaultError("the body must be a JSON object")
    return body


class ControlServer:
    """The control API on a thread of the stack's owner."""

    def __init__(self, stack: Stack, on_down: Callable[[], None] | None = None) -> None:
        self.token = secrets.token_urlsafe(24)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        stop = on_down or (lambda: os.kill(os.getpid(), signal.SIGTERM))
        config = uvicorn.Config(create_app(stack, self.token, stop), host="127.0.0.1",
                                port=self.port, log_level="warning", access_log=False,
                                log_config=None, lifespan="off")  # fmt: skip
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="stack-control", daemon=True)
        self._stack = stack

    def start(self) -> None:
        self._thread.start()
        for _ in range(500):
            if self._server.started:
                break
            time.sleep(0.01)
        if not self._server.started:
            raise StartError(f"the stack's control API could not listen on {self.url}")
        self._stack.control = {"url": self.url, "token": self.token}
        self._stack.refresh_state()

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(5)


class StackClient:
    """The CLI's side: talks to a running stack found by its state."""

    def __init__(self, state: dict[str, Any], timeout_s: float = 30.0) -> None:
        control = state.get("control") or {}
        if not control.get("url"):
            raise FaultError(f"stack {state.get('id')} has no control API (still starting?)")
        self._http = httpx.Client(base_url=control["url"], timeout=timeout_s,
                                  headers={"X-Stack-Token": control.get("token", "")})  # fmt: skip

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        try:
            answer = self._http.request(method, path, json=body)
        except httpx.HTTPError as error:
            raise FaultError(f"the stack's control API does not answer: {error}") from None
        if answer.status_code >= 400:
            try:
                message = answer.json().get("message", answer.text)
            except ValueError:
                message = answer.text
            raise FaultError(message)
        return answer.json()

    def status(self) -> dict[str, Any]:
        return dict(self._call("GET", "/status"))

    def faults(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/faults"))

    def inject(self, kind: str, target: str, params: dict[str, Any], duration_s: float) -> Any:
        body = {"kind": kind, "target": target, "params": params, "duration_s": duration_s}
        return self._call("POST", "/faults", body)

    def heal(self, fault_id: str | None = None) -> Any:
        return self._call("DELETE", f"/faults/{fault_id}" if fault_id else "/faults")

    def down(self) -> Any:
        return self._call("POST", "/down")

    def close(self) -> None:
        self._http.close()
