"""Pre-flight of the payment path: is the provider safe to run a drill against?

Before any fault is injected the drill must know that the provider it will judge behaves:
an idempotent retry returns the same PaymentIntent, a decline is a decline, refunds are
capped, and webhooks arrive signed while a forged one is refused. Each check answers
pass / fail / unknown with the evidence, and a check that raises is "unknown", never "pass".
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import stripe

from gameday.receiver import WebhookReceiver
from gameday.verdict import Verdict

_TEST_KEY = "sk_test_gameday_preflight"
_EXPECTED_EVENTS = ("payment_intent.succeeded", "charge.succeeded", "charge.refunded")


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    verdict: Verdict
    detail: str


def provider_client(url: str, retries: int = 2) -> stripe.StripeClient:
    return stripe.StripeClient(_TEST_KEY, base_addresses={"api": url}, max_network_retries=retries)


class ProviderPreflight:
    def __init__(self, url: str, receiver: WebhookReceiver, webhook_wait_s: float = 10.0) -> None:
        self.client = provider_client(url)
        self.receiver = receiver
        self.webhook_wait_s = webhook_wait_s
        self.order = f"preflight-{uuid.uuid4().hex[:12]}"

    def run(self, progress: Callable[[str], None] = lambda _: None) -> list[CheckResult]:
        checks: list[tuple[str, Callable[[], CheckResult]]] = [
            ("webhook endpoint registered", self._register),
            ("payment succeeds once per idempotency key", self._idempotent_payment),
            ("decline card is declined", self._decline),
            ("refunds capped at the captured amount", self._refund_cap),
            ("webhooks signed and delivered", self._webhooks),
            ("forged webhook refused", self._forged),
        ]
        results = []
        for name, check in checks:
            progress(name)
            try:
                results.append(check())
            except Exception as exc:  # a crashing check is unknown, never a pass
                results.append(CheckResult(name, Verdict.UNKNOWN, f"{type(exc).__name__}: {exc}"))
        return results

    def _register(self) -> CheckResult:
        endpoint = self.client.v1.webhook_endpoints.create(
            params={"url": self.receiver.url, "enabled_events": ["*"]}
        )
        self.receiver.secret = endpoint.secret or ""
        ok = endpoint.secret is not None and endpoint.secret.startswith("whsec_")
        return CheckResult(
            "webhook endpoint registered", Verdict.PASS if ok else Verdict.FAIL, endpoint.id
        )

    def _pay(self, key: str) -> stripe.PaymentIntent:
        return self.client.v1.payment_intents.create(
            params={"amount": 4200, "currency": "usd", "payment_method": "pm_card_visa",
                    "confirm": True, "metadata": {"order_id": self.order}},
            options={"idempotency_key": key},
        )  # fmt: skip

    def _idempotent_payment(self) -> CheckResult:
        key = f"{self.order}-pay"
        first, second = self._pay(key), self._pay(key)
        self.payment = first
        succeeded = [
            pi for pi in self.client.v1.payment_intents.list(params={"limit": 100}).data
            if pi.metadata.to_dict().get("order_id") == self.order and pi.status == "succeeded"
        ]  # fmt: skip
        ok = first.id == second.id and first.status == "succeeded" and len(succeeded) == 1
        detail = (
            f"{first.id} {first.status}; replay -> {second.id}; "
            f"succeeded for order: {len(succeeded)}"
        )
        return CheckResult(
            "payment succeeds once per idempotency key",
            Verdict.PASS if ok else Verdict.FAIL,
            detail,
        )

    def _decline(self) -> CheckResult:
        try:
            pi = self.client.v1.payment_intents.create(
                params={"amount": 4200, "currency": "usd", "confirm": True,
                        "payment_method": "pm_card_visa_chargeDeclinedInsufficientFunds"},
            )  # fmt: skip
        except stripe.CardError as exc:
            ok = exc.code == "card_declined"
            return CheckResult(
                "decline card is declined", Verdict.PASS if ok else Verdict.FAIL, str(exc.code)
            )
        return CheckResult("decline card is declined", Verdict.FAIL, f"{pi.id} ended {pi.status}")

    def _refund_cap(self) -> CheckResult:
        pi = self.payment.id
        self.client.v1.refunds.create(params={"payment_intent": pi, "amount": 4000})
        try:
            self.client.v1.refunds.create(params={"payment_intent": pi, "amount": 500})
        except stripe.InvalidRequestError as exc:
            ok = exc.code == "amount_too_large"
            return CheckResult(
                "refunds capped at the captured amount",
                Verdict.PASS if ok else Verdict.FAIL,
                str(exc.code),
            )
        return CheckResult(
            "refunds capped at the captured amount", Verdict.FAIL, "over-refund accepted"
        )

    def _webhooks(self) -> CheckResult:
        deadline = time.monotonic() + self.webhook_wait_s
        while time.monotonic() < deadline:
            if all(self.receiver.received[t] for t in _EXPECTED_EVENTS):
                break
            time.sleep(0.05)
        missing = [t for t in _EXPECTED_EVENTS if not self.receiver.received[t]]
        detail = f"{sum(self.receiver.received.values())} verified deliveries"
        if missing:
            return CheckResult(
                "webhooks signed and delivered", Verdict.FAIL, f"missing: {', '.join(missing)}"
            )
        return CheckResult("webhooks signed and delivered", Verdict.PASS, detail)

    def _forged(self) -> CheckResult:
        before = self.receiver.rejected
        forged = b'{"id": "evt_forged", "object": "event", "type": "payment_intent.succeeded"}'
        status = httpx.post(
            self.receiver.url,
            content=forged,
            headers={"Stripe-Signature": f"t={int(time.time())},v1={'0' * 64}"},
            timeout=10,
        ).status_code
        ok = status == 400 and self.receiver.rejected == before + 1
        return CheckResult(
            "forged webhook refused", Verdict.PASS if ok else Verdict.FAIL, f"HTTP {status}"
        )
