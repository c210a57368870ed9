"""The target's API as the drill's clients use it, every request recorded in the history.

Each method builds a :class:`~gameday.load.driver.Call` and says what the checkers need
from the answer (``Op.value``): the booking a hold created, the payment an answer reports
and a digest of the whole answer (so "all answers to one idempotency key are the same"
can be checked without keeping bodies), the webhook event delivered.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from gameday.drill.target import Target
from gameday.history import Op
from gameday.load.client import HttpClient, Response
from gameday.load.driver import Call, Driver

CARD_OK = "4242424242424242"


@dataclass
class Session:
    email: str
    token: str
    refresh_token: str

    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}


def digest(response: Response) -> str:
    """The answer as the client saw it, canonically: status and JSON body, keys sorted."""
    try:
        body: Any = orjson.loads(response.body) if response.body else None
        canonical = orjson.dumps([response.status, body], option=orjson.OPT_SORT_KEYS)
    except orjson.JSONDecodeError:
        canonical = str(response.status).encode() + b"\0" + response.body
    return hashlib.sha256(canonical).hexdigest()[:16]


def _json(response: Response) -> Any:
    try:
        return orjson.loads(response.body) if response.body else None
    except orjson.JSONDecodeError:
        return None


class Shop:
    def __init__(self, target: Target, driver: Driver, clients: dict[str, HttpClient]) -> None:
        self.target = target
        self.driver = driver
        self.clients = clients
        """``ingress`` and each instance by name."""
        self.paths = target.paths

    def client(self, where: str = "ingress") -> HttpClient:
        return self.clients[where]

    # ------------------------------------------------------------------ auth

    def login_call(self, email: str, ttl_s: float | None = None, where: str = "ingress") -> Call:
        body: dict[str, Any] = {"email": email, "password": self.target.password}
        if ttl_s:
            body["ttl_s"] = ttl_s
        return Call(
            "login", "POST", self.paths.login, "POST " + self.paths.login, json=body, target=where
        )

    async def login(
        self, email: str, process: str, ttl_s: float | None = None, where: str = "ingress"
    ) -> Session | None:
        return await self._tokens(email, self.login_call(email, ttl_s, where), process, where)

    async def refresh(self, session: Session, process: str) -> Session | None:
        call = Call("refresh", "POST", self.paths.refresh, "POST " + self.paths.refresh,
                    json={"refresh_token": session.refresh_token}, target="ingress")  # fmt: skip
        return await self._tokens(session.email, call, process, "ingress")

    async def _tokens(self, email: str, call: Call, process: str, where: str) -> Session | None:
        """A call that answers a token pair (log in, refresh): the session, or None."""
        found: list[Session] = []

        def value(r: Response) -> dict[str, Any] | None:
            body = _json(r)
            if r.status == 200 and isinstance(body, dict) and "access_token" in body:
                found.append(Session(email, str(body["access_token"]), str(body["refresh_token"])))
                return {"expires_in": body.get("expires_in")}
            return None

        await self.driver.call(self.client(where), call, process, value=value)
        return found[0] if found else None

    # ------------------------------------------------------------------ bookings

    def hold_call(
        self,
        session: Session,
        resource_id: int,
        starts: datetime,
        ends: datetime,
        where: str = "ingress",
    ) -> Call:
        body = {
            "resource_id": resource_id,
            "starts_at": starts.isoformat(),
            "ends_at": ends.isoformat(),
        }
        return Call(
            "hold",
            "POST",
            self.paths.hold,
            "POST " + self.paths.hold,
            headers=session.headers(),
            json=body,
            target=where,
        )

    @staticmethod
    def hold_value(
        resource_id: int, starts: datetime, ends: datetime
    ) -> Callable[[Response], dict[str, Any]]:
        asked = {
            "resource_id": resource_id,
            "starts_at": starts.isoformat(),
            "ends_at": ends.isoformat(),
        }

        def value(r: Response) -> dict[str, Any]:
            body = _json(r)
            if 200 <= r.status < 300 and isinstance(body, dict) and "id" in body:
                return {**asked, "booking_id": int(body["id"]), "status": str(body.get("status"))}
            return asked

        return value

    async def hold(
        self,
        session: Session,
        resource_id: int,
        starts: datetime,
        ends: datetime,
        process: str,
        where: str = "ingress",
    ) -> Op:
        return await self.driver.call(
            self.client(where),
            self.hold_call(session, resource_id, starts, ends, where),
            process,
            value=self.hold_value(resource_id, starts, ends),
        )

    def pay_call(
        self,
        session: Session,
        booking_id: int,
        key: str,
        card: str = CARD_OK,
        where: str = "ingress",
    ) -> Call:
        path = self.paths.pay.replace("{id}", str(booking_id))
        headers = {**session.headers(), "idempotency-key": key}
        return Call(
            "pay",
            "POST",
            path,
            "POST " + self.paths.pay,
            headers=headers,
            json={"payment_method": card},
            idempotency_key=key,
            target=where,
        )

    @staticmethod
    def pay_value(booking_id: int) -> Callable[[Response], dict[str, Any]]:
        def value(r: Response) -> dict[str, Any]:
            found: dict[str, Any] = {"booking_id": booking_id, "digest": digest(r)}
            body = _json(r)
            if isinstance(body, dict) and "payment_id" in body:
                found.update(
                    payment_id=body["payment_id"],
                    payment_intent=body.get("payment_intent"),
                    status=body.get("status"),
                    booking_status=body.get("booking_status"),
                )
            return found

        return value

    async def pay(
        self,
        session: Session,
        booking_id: int,
        key: str,
        process: str,
        card: str = CARD_OK,
        where: str = "ingress",
    ) -> Op:
        return await self.driver.call(
            self.client(where),
            self.pay_call(session, booking_id, key, card, where),
            process,
            value=self.pay_value(booking_id),
        )

    async def booking(self, session: Session, booking_id: int, process: str) -> Op:
        path = self.paths.booking.replace("{id}", str(booking_id))
        call = Call(
            "get_booking",
            "GET",
            path,
            "GET " + self.paths.booking,
            headers=session.headers(),
            target="ingress",
        )

        def value(r: Response) -> dict[str, Any] | None:
            body = _json(r)
            return (
                {"booking_id": booking_id, "status": body.get("status")}
                if isinstance(body, dict)
                else None
            )

        return await self.driver.call(self.client(), call, process, value=value)

    async def availability(
        self,
        session: Session,
        resource_id: int,
        starts: datetime,
        ends: datetime,
        process: str,
        where: str = "ingress",
    ) -> Op:
        path = self.paths.availability.replace("{id}", str(resource_id))
        path += f"?from={starts:%Y-%m-%dT%H:%M:%SZ}&to={ends:%Y-%m-%dT%H:%M:%SZ}"
        call = Call(
            "availability",
            "GET",
            path,
            "GET " + self.paths.availability,
            headers=session.headers(),
            target=where,
        )
        return await self.driver.call(self.client(where), call, process)

    async def resources(self, session: Session) -> list[int]:
        call = Call(
            "resources",
            "GET",
            self.paths.resources,
            "GET " + self.paths.resources,
            headers=session.headers(),
            target="ingress",
        )
        found: list[int] = []

        def value(r: Response) -> None:
            body = _json(r)
            items = body.get("items", body) if isinstance(body, dict) else body
            if isinstance(items, list):
                found.extend(int(i["id"]) for i in items if isinstance(i, dict) and "id" in i)

        await self.driver.call(self.client(), call, "setup", value=value)
        return found

    # ------------------------------------------------------------------ webhooks

    def webhook_call(self, payload: bytes, signature: str) -> Call:
        return Call(
            "webhook",
            "POST",
            self.paths.webhook,
            "POST " + self.paths.webhook,
            headers={"stripe-signature": signature, "content-type": "application/json"},
            body=payload,
            target="ingress",
        )

    @staticmethod
    def webhook_value(event: dict[str, Any]) -> Callable[[Response], dict[str, Any]]:
        found = {"event_id": str(event.get("id")), "event_type": str(event.get("type"))}
        return lambda _r: found

    def sign(self, payload: bytes, at: float | None = None, secret: str | None = None) -> str:
        """A ``Stripe-Signature`` header, made the way Stripe makes it (HMAC-SHA256 of
        ``"{t}.{payload}"``): the SDK only verifies, so this one line is by hand."""
        t = int(time.time() if at is None else at)
        key = (self.target.webhook_secret if secret is None else secret).encode()
        mac = hmac.new(key, f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
        return f"t={t},v1={mac}"
