"""The composition root: one ``Emulator`` owns the clock, the state and the background work.

``reset`` rebuilds the state (objects, keys, faults, pending deliveries) while the clock and
the worker tasks keep running, so a drill can start each scenario from nothing without
restarting the process.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

from stripe_emulator import render
from stripe_emulator.clock import Clock
from stripe_emulator.faults import FaultConfig
from stripe_emulator.idempotency import DAY_S, IdempotencyStore
from stripe_emulator.payments import Payments
from stripe_emulator.refunds import Refunds
from stripe_emulator.scheduler import Scheduler
from stripe_emulator.state import State
from stripe_emulator.webhooks import DeliverySettings, Dispatcher


@dataclass(frozen=True, slots=True)
class Settings:
    clock_speed: float = 1.0
    delivery: DeliverySettings = field(default_factory=DeliverySettings)
    idempotency_ttl_s: float = DAY_S
    allow_remote_webhooks: bool = False
    """Webhook URLs must point at loopback unless this is set: drills never leave the host."""


class Emulator:
    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.clock = Clock(self.settings.clock_speed)
        self.scheduler = Scheduler(self.clock)
        self.dispatcher = Dispatcher(self.settings.delivery)
        self.base_url = "http://127.0.0.1"
        self._tasks: list[asyncio.Task[None]] = []
        self.payment_intents_before_reset = 0
        """Created before the last ``reset``, so the metrics' counter never goes back."""
        self._build()

    def _build(self) -> None:
        self.state = State(
            clock=self.clock,
            scheduler=self.scheduler,
            on_event=self.dispatcher.enqueue_event,
            base_url=self.base_url,
        )
        self.payments = Payments(self.state)
        self.refunds = Refunds(self.state, self.payments)
        self.idempotency = IdempotencyStore(self.clock, self.settings.idempotency_ttl_s)
        self.dispatcher.bind(self.state)

    def reset(self) -> None:
        self.payment_intents_before_reset += len(self.state.payment_intents)
        self.scheduler.clear()
        self.dispatcher.clear()
        self._build()

    def set_faults(self, config: FaultConfig) -> None:
        self.state.faults.set(config, self.clock.now())

    def set_base_url(self, url: str) -> None:
        self.base_url = url
        self.state.base_url = url

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self.scheduler.run(), name="emulator-scheduler"),
            asyncio.create_task(self.dispatcher.run(), name="emulator-webhooks"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    def ledger(self) -> dict[str, Any]:
        """What a checker needs to count charges per logical order, with metadata."""
        s = self.state
        intents = [
            {
                "id": pi.id,
                "status": pi.status,
                "amount": pi.amount,
                "amount_received": pi.amount_received,
                "currency": pi.currency,
                "customer": pi.customer,
                "latest_charge": pi.latest_charge,
                "created": pi.created,
                "metadata": dict(pi.metadata),
                "amount_refunded": (
                    s.charges.by_id[pi.latest_charge].amount_refunded if pi.latest_charge else 0
                ),
            }
            for pi in s.payment_intents
        ]
        refunds = [render.refund(r) for r in s.refunds]
        return {"object": "ledger", "payment_intents": intents, "refunds": refunds}
