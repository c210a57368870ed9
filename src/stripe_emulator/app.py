"""The ASGI application: Stripe's routes, the test-only routes, and the drop wrapper."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from stripe_emulator import admin, api_objects, api_payment_methods, api_payments
from stripe_emulator.emulator import Emulator
from stripe_emulator.errors import InvalidRequestError
from stripe_emulator.metrics import EmulatorMetrics, RequestMetrics, metrics_endpoint
from stripe_emulator.pipeline import DropConnection, Op, endpoint, error_response

_GET, _POST, _DELETE = ["GET"], ["POST"], ["DELETE"]


def _v1(path: str, op: Op, methods: list[str]) -> Route:
    return Route(f"/v1/{path}", endpoint(op), methods=methods)


def _routes() -> list[Route]:
    p, m, o = api_payments, api_payment_methods, api_objects
    return [
        _v1("payment_intents", p.create_payment_intent, _POST),
        _v1("payment_intents", p.list_payment_intents, _GET),
        _v1("payment_intents/{id}", p.retrieve_payment_intent, _GET),
        _v1("payment_intents/{id}", p.update_payment_intent, _POST),
        _v1("payment_intents/{id}/confirm", p.confirm_payment_intent, _POST),
        _v1("payment_intents/{id}/capture", p.capture_payment_intent, _POST),
        _v1("payment_intents/{id}/cancel", p.cancel_payment_intent, _POST),
        _v1("payment_methods", m.create_payment_method, _POST),
        _v1("payment_methods", m.list_payment_methods, _GET),
        _v1("payment_methods/{id}", m.retrieve_payment_method, _GET),
        _v1("payment_methods/{id}/attach", m.attach_payment_method, _POST),
        _v1("payment_methods/{id}/detach", m.detach_payment_method, _POST),
        _v1("charges", o.list_charges, _GET),
        _v1("charges/{id}", o.retrieve_charge, _GET),
        _v1("refunds", o.create_refund, _POST),
        _v1("refunds", o.list_refunds, _GET),
        _v1("refunds/{id}", o.retrieve_refund, _GET),
        _v1("refunds/{id}", o.update_refund, _POST),
        _v1("customers", o.create_customer, _POST),
        _v1("customers", o.list_customers, _GET),
        _v1("customers/{id}", o.retrieve_customer, _GET),
        _v1("customers/{id}", o.update_customer, _POST),
        _v1("customers/{id}", o.delete_customer, _DELETE),
        _v1("events", o.list_events, _GET),
        _v1("events/{id}", o.retrieve_event, _GET),
        _v1("webhook_endpoints", o.create_webhook_endpoint, _POST),
        _v1("webhook_endpoints", o.list_webhook_endpoints, _GET),
        _v1("webhook_endpoints/{id}", o.retrieve_webhook_endpoint, _GET),
        _v1("webhook_endpoints/{id}", o.update_webhook_endpoint, _POST),
        _v1("webhook_endpoints/{id}", o.delete_webhook_endpoint, _DELETE),
        Route("/_emulator/health", admin.health, methods=_GET),
        Route("/metrics", metrics_endpoint, methods=_GET),
        Route("/_emulator/reset", admin.admin(admin.reset), methods=_POST),
        Route("/_emulator/faults", admin.admin(admin.get_faults), methods=_GET),
        Route("/_emulator/faults", admin.admin(admin.set_faults), methods=["POST", "PUT"]),
        Route("/_emulator/faults", admin.admin(admin.clear_faults), methods=_DELETE),
        Route("/_emulator/clock", admin.admin(admin.get_clock), methods=_GET),
        Route("/_emulator/clock", admin.admin(admin.advance_clock), methods=_POST),
        Route("/_emulator/ledger", admin.admin(admin.ledger), methods=_GET),
        Route("/_emulator/webhook_deliveries", admin.admin(admin.deliveries), methods=_GET),
        Route(
            "/_emulator/payment_intents/{id}/authenticate",
            admin.admin(admin.authenticate),
            methods=_POST,
        ),
    ]


async def _unrouted(request: Request, exc: Exception) -> Response:
    """Stripe answers an unknown path and a known path with the wrong method alike: 404."""
    error = InvalidRequestError(
        f"Unrecognized request URL ({request.method}: {request.url.path}).", status=404
    )
    return error_response(error, "req_unrouted")


def create_app(emulator: Emulator | None = None) -> ASGIApp:
    """An ASGI app serving ``emulator`` (a fresh one by default)."""
    emu = emulator or Emulator()

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await emu.start()
        try:
            yield
        finally:
            await emu.stop()

    app = Starlette(
        routes=_routes(),
        lifespan=lifespan,
        exception_handlers={404: _unrouted, 405: _unrouted},
    )
    app.state.emulator = emu
    app.state.metrics = metrics = EmulatorMetrics(emu)
    return DropConnection(RequestMetrics(app, metrics))
