"""Everything the emulator remembers, in one place that ``reset`` can rebuild."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from stripe_emulator.clock import Clock
from stripe_emulator.events import EventLog
from stripe_emulator.faults import Faults
from stripe_emulator.ids import IdFactory
from stripe_emulator.objects import (
    Charge,
    Customer,
    Event,
    PaymentIntent,
    PaymentMethod,
    Refund,
    WebhookEndpoint,
)
from stripe_emulator.scheduler import Scheduler
from stripe_emulator.store import Collection


@dataclass
class State:
    clock: Clock
    scheduler: Scheduler
    on_event: Callable[[Event, list[WebhookEndpoint]], None]
    ids: IdFactory = field(default_factory=IdFactory)
    faults: Faults = field(default_factory=Faults)
    base_url: str = "http://127.0.0.1"
    customers: Collection[Customer] = field(default_factory=lambda: Collection("customer"))
    payment_methods: Collection[PaymentMethod] = field(
        default_factory=lambda: Collection("payment_method", {"customer": lambda pm: pm.customer})
    )
    payment_intents: Collection[PaymentIntent] = field(
        default_factory=lambda: Collection("payment_intent", {"customer": lambda pi: pi.customer})
    )
    charges: Collection[Charge] = field(
        default_factory=lambda: Collection(
            "charge",
            {"customer": lambda ch: ch.customer, "payment_intent": lambda ch: ch.payment_intent},
        )
    )
    refunds: Collection[Refund] = field(
        default_factory=lambda: Collection(
            "refund", {"charge": lambda r: r.charge, "payment_intent": lambda r: r.payment_intent}
        )
    )
    endpoints: Collection[WebhookEndpoint] = field(
        default_factory=lambda: Collection("webhook_endpoint")
    )
    log: EventLog = field(init=False)

    def __post_init__(self) -> None:
        self.log = EventLog(self.clock, self.ids, self.endpoints, self.on_event)

    def now(self) -> int:
        return self.clock.timestamp()
