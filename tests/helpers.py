"""Test-side peers: a webhook receiver that records and can be told to fail."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, cast

import orjson
import stripe
from stripe.params import PaymentIntentCreateParams


@dataclass
class Delivery:
    event: dict[str, Any]
    signature: str
    verified: bool
    status: int


@dataclass
class Receiver:
    """A real HTTP server on 127.0.0.1 that verifies ``Stripe-Signature`` with the SDK.

    ``fail_first`` answers 500 to that many deliveries before accepting; ``secret`` must be
    set to the endpoint's ``whsec_`` before events arrive.
    """

    secret: str = ""
    fail_first: int = 0
    deliveries: list[Delivery] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # http.server's naming
                payload = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status = receiver.handle(payload, self.headers.get("Stripe-Signature", ""))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhooks/stripe"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def handle(self, payload: bytes, signature: str) -> int:
        try:
            stripe.Webhook.construct_event(payload, signature, self.secret)
            verified = True
        except stripe.SignatureVerificationError:
            verified = False
        with self.lock:
            status = 400 if not verified else 200
            if verified and self.fail_first > 0:
                self.fail_first -= 1
                status = 500
            self.deliveries.append(Delivery(orjson.loads(payload), signature, verified, status))
        return status

    def accepted(self) -> list[dict[str, Any]]:
        with self.lock:
            return [d.event for d in self.deliveries if d.status == 200]

    def types(self) -> list[str]:
        return [e["type"] for e in self.accepted()]

    def wait_for(self, predicate: Callable[[Receiver], bool], timeout_s: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate(self):
                return True
            time.sleep(0.02)
        return predicate(self)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.server.shutdown()
        self.server.server_close()


CARD_PAYMENT: dict[str, Any] = {
    "amount": 2500,
    "currency": "usd",
    "payment_method": "pm_card_visa",
    "confirm": True,
}


def payment(**overrides: Any) -> PaymentIntentCreateParams:
    """Parameters of a confirmed card payment, typed for the SDK."""
    return cast("PaymentIntentCreateParams", {**CARD_PAYMENT, **overrides})
