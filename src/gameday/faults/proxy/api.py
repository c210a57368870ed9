"""The control API: JSON over HTTP on loopback, served in the engine's own event loop, so a
handler reads and changes links without locks or thread hops.

Every client mistake is a 4xx with ``{"error": code, "message": text}`` (and ``field`` for
a description that cannot be obeyed); a 500 would mean a bug in the proxy. With a token
configured, every request that can see or change the links must carry it in
``X-Proxy-Token``; ``/metrics`` and ``/health`` are open (read-only counters, loopback only)
so that Prometheus, which cannot send custom headers before 2.55, can scrape the proxy.
"""

from __future__ import annotations

import hmac
import json
from typing import Any, cast

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from gameday.faults.proxy.client import TOKEN_HEADER
from gameday.faults.proxy.engine import ProxyEngine
from gameday.faults.proxy.errors import InvalidSpec, ProxyError
from gameday.faults.proxy.metrics import engine_registry

MAX_BODY = 64 * 1024


def error_response(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": code, "message": message, **extra}, status_code=status)


OPEN_PATHS = frozenset({"/metrics", "/health"})


class TokenGuard:
    """Refuses any request without the shared token (compared in constant time), except
    the read-only scrape and health routes."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in OPEN_PATHS:
            given = dict(scope["headers"]).get(TOKEN_HEADER.lower().encode(), b"")
            if not hmac.compare_digest(given, self.token):
                message = f"missing or wrong {TOKEN_HEADER} header"
                await error_response(401, "unauthorized", message)(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def _json_body(request: Request) -> object:
    body = await request.body()
    if len(body) > MAX_BODY:
        raise InvalidSpec("", f"body larger than {MAX_BODY} bytes")
    try:
        return json.loads(body)
    except ValueError:
        raise InvalidSpec("", "body is not JSON") from None


async def _proxy_error(request: Request, exc: Exception) -> Response:
    error = cast(ProxyError, exc)  # registered for ProxyError only
    extra = {"field": error.field} if isinstance(error, InvalidSpec) else {}
    return error_response(error.status, error.code, error.message, **extra)


async def _http_error(request: Request, exc: Exception) -> Response:
    error = cast(HTTPException, exc)  # registered for HTTPException only
    code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
    return error_response(error.status_code, code, str(error.detail))


async def _internal_error(request: Request, exc: Exception) -> Response:
    return error_response(500, "internal", f"{type(exc).__name__}: {exc}")


class _Handlers:
    """The endpoints, each a thin call into the engine."""

    def __init__(self, engine: ProxyEngine) -> None:
        self.engine = engine
        self.registry = engine_registry(engine)

    async def add_link(self, request: Request) -> Response:
        link = await self.engine.add_link(await _json_body(request))
        return JSONResponse(link.to_json(), status_code=201)

    async def list_links(self, request: Request) -> Response:
        return JSONResponse([link.to_json() for link in self.engine.links()])

    async def get_link(self, request: Request) -> Response:
        return JSONResponse(self.engine.link(request.path_params["name"]).to_json())

    async def remove_link(self, request: Request) -> Response:
        await self.engine.remove_link(request.path_params["name"])
        return Response(status_code=204)

    async def list_toxics(self, request: Request) -> Response:
        link = self.engine.link(request.path_params["name"])
        return JSONResponse([active.to_json() for active in link.toxics])

    async def add_toxic(self, request: Request) -> Response:
        body = await _json_body(request)
        active = await self.engine.add_toxic(request.path_params["name"], body)
        return JSONResponse(active.to_json(), status_code=201)

    async def remove_toxic(self, request: Request) -> Response:
        params = request.path_params
        await self.engine.remove_toxic(params["name"], params["toxic_id"])
        return Response(status_code=204)

    async def clear(self, request: Request) -> Response:
        await self.engine.clear(request.path_params["name"])
        return Response(status_code=204)

    async def metrics(self, request: Request) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "links": len(self.engine.links())})


def create_app(engine: ProxyEngine, token: str | None = None) -> Starlette:
    h = _Handlers(engine)
    routes = [
        Route("/links", h.add_link, methods=["POST"]),
        Route("/links", h.list_links, methods=["GET"]),
        Route("/links/{name}", h.get_link, methods=["GET"]),
        Route("/links/{name}", h.remove_link, methods=["DELETE"]),
        Route("/links/{name}/toxics", h.list_toxics, methods=["GET"]),
        Route("/links/{name}/toxics", h.add_toxic, methods=["POST"]),
        Route("/links/{name}/toxics", h.clear, methods=["DELETE"]),
        Route("/links/{name}/toxics/{toxic_id}", h.remove_toxic, methods=["DELETE"]),
        Route("/metrics", h.metrics, methods=["GET"]),
        Route("/health", h.health, methods=["GET"]),
    ]
    handlers = {ProxyError: _proxy_error, HTTPException: _http_error, Exception: _internal_error}
    middleware = [Middleware(TokenGuard, token=token)] if token else []
    return Starlette(routes=routes, exception_handlers=handlers, middleware=middleware)
