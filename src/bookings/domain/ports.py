"""What the services need from the outside world, as protocols the adapters implement."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from bookings.domain.payments import PaymentStatus


@dataclass(frozen=True, slots=True)
class IntentSnapshot:
    """The provider's view of one payment intent, as far as bookings care."""

    id: str
    status: PaymentStatus
    amount: int
    metadata: Mapping[str, str]
    decline_code: str | None = None
    next_action_url: str | None = None
    refunded: bool = False


class CardDeclinedError(Exception):
    def __init__(self, intent: IntentSnapshot | None, decline_code: str, message: str) -> None:
        super().__init__(message)
        self.intent = intent
        self.decline_code = decline_code


class PaymentGateway(Protocol):
    async def create_intent(
        self, *, amount: int, currency: str, metadata: Mapping[str, str], idempotency_key: str
    ) -> IntentSnapshot: ...

    async def confirm(
        self, intent_id: str, *, payment_method: str, idempotency_key: str
    ) -> IntentSnapshot:
        """Raises ``CardDeclinedError`` on a decline, ``ProviderUnavailable`` on trouble."""
        ...

    async def retrieve(self, intent_id: str) -> IntentSnapshot: ...

    async def refund(self, intent_id: str, *, idempotency_key: str) -> None: ...

    async def cancel_intent(self, intent_id: str, *, idempotency_key: str) -> IntentSnapshot:
        """The intent canceled — or its current state, if it can no longer be canceled."""
        ...

    async def list_intents(self, limit: int) -> Sequence[IntentSnapshot]: ...

    async def ping(self) -> None: ...


class Mailer(Protocol):
    async def send(self, *, recipient: str, subject: str, body: str) -> None: ...
