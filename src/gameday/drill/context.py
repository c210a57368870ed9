"""What a probe may use while a drill runs: the shop, logged-in sessions, fresh booking
ranges, the provider's view, and the booking ids the current scenario touched."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from gameday.drill.shop import Session, Shop
from gameday.drill.target import Target
from gameday.history import HistoryWriter
from gameday.load.driver import Driver

if TYPE_CHECKING:
    from gameday.stack.stack import Stack

SLOT_MINUTES = 30
T = TypeVar("T")
_PROVIDER_TIMEOUT_S = 10.0


class ProbeError(RuntimeError):
    """A probe could not set up what it measures (e.g. no session): its figures are missing,
    so the criteria that read them are unknown, never passed."""


async def together(coros: list[Coroutine[Any, Any, T]]) -> list[T]:
    """All of them at once; the first failure stops the rest (no request left running
    unawaited) and a probe's own error comes out as itself, not as an ExceptionGroup."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(c) for c in coros]
    except* ProbeError as failed:
        raise failed.exceptions[0] from None
    return [t.result() for t in tasks]


class DrillContext:
    def __init__(
        self,
        target: Target,
        shop: Shop,
        driver: Driver,
        history: HistoryWriter,
        *,
        pace: str,
        seed: int,
        stack: Stack | None = None,
    ) -> None:
        self.target, self.shop, self.driver, self.history = target, shop, driver, history
        self.pace = pace
        self.rng = random.Random(seed)
        self.stack = stack
        self.resources: list[int] = []
        self.bookings: set[int] = set()
        """Booking ids the current scenario was told about (its checks are scoped to them)."""
        self.requested: set[tuple[int, datetime, datetime]] = set()
        """Every (resource, range) the current scenario asked for: a hold answered 503 or
        never answered may still have committed, and its checks must see it too."""
        self._sessions: dict[str, Session] = {}
        self._slot = 0
        # Far enough ahead that nothing seeded is there, varied by seed so a rerun against
        # a kept database rarely lands on an earlier run's ranges.
        day = 30 + self.rng.randrange(0, 300)
        self._base = (datetime.now(UTC) + timedelta(days=day)).replace(
            hour=0, minute=0, second=0, microsecond=0
        )

    # ------------------------------------------------------------------ clients

    def users(self) -> list[str]:
        return [*self.target.customers, *self.target.premium]

    async def session(self, email: str | None = None, process: str = "setup") -> Session:
        email = email or self.rng.choice(self.target.customers)
        found = self._sessions.get(email)
        if found is None:
            found = await self.shop.login(email, process)
            if found is None:
                raise ProbeError(f"cannot log in as {email}")
            self._sessions[email] = found
        return found

    def forget(self, email: str) -> None:
        self._sessions.pop(email, None)

    async def sessions(self, n: int) -> list[Session]:
        users = self.users()
        if n > len(users):
            raise ProbeError(f"{n} users asked for, the target has {len(users)}")
        return await together([self.session(u) for u in users[:n]])

    def fresh_range(self) -> tuple[int, datetime, datetime]:
        """A resource and a range nobody else in this drill asks for."""
        if not self.resources:
            raise ProbeError("the target lists no bookable resources")
        i, self._slot = self._slot, self._slot + 1
        resource = self.resources[i % len(self.resources)]
        starts = self._base + timedelta(minutes=SLOT_MINUTES * (i // len(self.resources)))
        found = (resource, starts, starts + timedelta(minutes=SLOT_MINUTES))
        self.requested.add(found)
        return found

    def new_scenario(self) -> None:
        self.bookings, self.requested = set(), set()

    def note_booking(self, booking_id: object) -> None:
        if isinstance(booking_id, int):
            self.bookings.add(booking_id)

    # ------------------------------------------------------------------ provider

    async def provider_get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """A GET on the provider's API (events, intents), off the event loop."""
        if not self.target.provider_url:
            raise ProbeError("the target profile names no payment provider")

        def get() -> Any:
            answer = httpx.get(
                f"{self.target.provider_url}{path}",
                params=params,
                timeout=_PROVIDER_TIMEOUT_S,
                headers={"Authorization": f"Bearer {self.target.provider_key}"},
            )
            answer.raise_for_status()
            return answer.json()

        return await asyncio.to_thread(get)

    async def intents_for(self, booking_id: int) -> list[dict[str, Any]]:
        """The provider's PaymentIntents whose metadata names ``booking_id``."""
        found: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": 100}
        for _page in range(50):  # bounded: 5,000 intents
            page = await self.provider_get("/v1/payment_intents", params)
            for intent in page.get("data", []):
                if str((intent.get("metadata") or {}).get("booking_id")) == str(booking_id):
                    found.append(intent)
            if not page.get("has_more") or not page.get("data"):
                break
            params["starting_after"] = page["data"][-1]["id"]
        return found

    async def events_for(self, intent_id: str) -> list[dict[str, Any]]:
        """The provider's events about ``intent_id``, oldest first."""
        found: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": 100}
        for _page in range(20):
            page = await self.provider_get("/v1/events", params)
            for event in page.get("data", []):
                obj = event.get("data", {}).get("object", {})
                if intent_id in (obj.get("id"), obj.get("payment_intent")):
                    found.append(event)
            if not page.get("has_more") or not page.get("data"):
                break
            params["starting_after"] = page["data"][-1]["id"]
        return sorted(found, key=lambda e: (e.get("created", 0), e.get("id", "")))
