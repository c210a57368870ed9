"""A webhook receiver that verifies every delivery the way a production service must.

Used by the drill's pre-flight to prove that the provider signs its webhooks and that a
forged or unsigned delivery is refused. Signatures are checked with the official SDK's
``stripe.Webhook.construct_event``; the standard library's threaded HTTP server is enough
for a handful of deliveries and keeps this free of another framework.
"""

from __future__ import annotations

import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

import stripe

_MAX_BODY = 1 << 20


class WebhookReceiver:
    def __init__(self, secret: str = "") -> None:
        self.secret = secret
        self.received: Counter[str] = Counter()
        self.event_ids: list[str] = []
        self.rejected = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        host, port = self._server.server_address[:2]
        self.url = f"http://{host!s}:{port}/webhooks/stripe"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # http.server's naming
                length = min(int(self.headers.get("Content-Length", "0") or 0), _MAX_BODY)
                payload = self.rfile.read(length)
                signature = self.headers.get("Stripe-Signature", "")
                status = receiver.accept(payload, signature)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return

        return Handler

    def accept(self, payload: bytes, signature: str) -> int:
        try:
            event = stripe.Webhook.construct_event(payload, signature, self.secret)
        except (stripe.SignatureVerificationError, ValueError):
            with self._lock:
                self.rejected += 1
            return 400
        with self._lock:
            self.received[event.type] += 1
            self.event_ids.append(event.id)
        return 200

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
