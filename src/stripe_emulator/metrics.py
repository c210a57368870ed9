"""Prometheus metrics of the emulator, so a drill's Prometheus sees the provider's side too.

The registry belongs to one app (never the process-wide default), so tests and benchmarks
can run several emulators in one process. Requests are counted by a pure ASGI wrapper; the
rest is read from the emulator's own state when Prometheus scrapes, instead of hooks in the
payment and webhook code: the state already counts what matters, and ``/metrics`` runs on
the event loop that owns that state, so reading it needs no lock. PaymentIntents and
deliveries are counted across ``reset`` (a drill that resets between scenarios never sees
them go backwards); the fault counts restart with the state, which Prometheus reads as a
counter reset, as it would for a restarted process.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stripe_emulator.emulator import Emulator
from stripe_emulator.faults import FaultConfig

_PREFIX = "stripe_emulator"
_NOT_SWITCHES = frozenset({"seed", "error_status", "should_retry", "decline_code"})
"""Parameters of a switch, not switches: they change nothing on their own."""


class EmulatorMetrics:
    def __init__(self, emulator: Emulator) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            f"{_PREFIX}_http_requests_total",
            "API requests by route template, method and status code.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.registry.register(_StateCollector(emulator))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _StateCollector(Collector):
    def __init__(self, emulator: Emulator) -> None:
        self._emu = emulator

    def collect(self) -> Iterator[Metric]:
        emu, state = self._emu, self._emu.state
        yield CounterMetricFamily(
            f"{_PREFIX}_payment_intents_created",
            "PaymentIntents created (idempotent replays excluded).",
            value=emu.payment_intents_before_reset + len(state.payment_intents),
        )
        deliveries = CounterMetricFamily(
            f"{_PREFIX}_webhook_deliveries",
            "Webhook delivery attempts by outcome: delivered (2xx) or failed.",
            labels=["outcome"],
        )
        deliveries.add_metric(["delivered"], emu.dispatcher.delivered)
        deliveries.add_metric(["failed"], emu.dispatcher.failed)
        yield deliveries
        yield GaugeMetricFamily(
            f"{_PREFIX}_webhook_deliveries_pending",
            "Deliveries (event x endpoint) still waiting for a 2xx and not given up.",
            value=sum(len(e.pending - e.failed) for e in state.log.events if e.pending),
        )
        yield _switches(emu)
        fired = CounterMetricFamily(
            f"{_PREFIX}_faults_fired",
            "Times a fault switch fired since the last reset.",
            labels=["fault"],
        )
        fired.add_metric(["error"], state.faults.injected_errors)
        fired.add_metric(["dropped_connection"], state.faults.dropped_connections)
        yield fired


def _switches(emu: Emulator) -> GaugeMetricFamily:
    """1 per fault switch set away from its default (every switch listed, so a 0 is seen)."""
    faults = emu.state.faults
    active = GaugeMetricFamily(
        f"{_PREFIX}_fault_switch_active",
        "1 while a fault switch is set; webhook_down_for_s only while its window lasts.",
        labels=["switch"],
    )
    default = FaultConfig()
    for field in dataclasses.fields(FaultConfig):
        if field.name in _NOT_SWITCHES:
            continue
        on = getattr(faults.config, field.name) != getattr(default, field.name)
        if field.name == "webhook_down_for_s":
            on = faults.webhook_down(emu.clock.now())
        active.add_metric([field.name], float(on))
    return active


async def metrics_endpoint(request: Request) -> Response:
    """``GET /metrics``: async so it runs on the loop that owns the state it reads."""
    metrics: EmulatorMetrics = request.app.state.metrics
    return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)


class RequestMetrics:
    """Counts every HTTP request by the route template the router matched ("unmatched"
    for unknown paths, so ids never become label values); status "0" means no answer was
    started (the client went away)."""

    def __init__(self, app: ASGIApp, metrics: EmulatorMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 0

        async def observe(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observe)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.labels(route, scope["method"], str(status)).inc()
