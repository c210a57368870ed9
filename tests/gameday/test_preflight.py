"""The provider pre-flight passes on a good provider and catches a bad one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gameday.preflight import CheckResult, ProviderPreflight
from gameday.receiver import WebhookReceiver
from gameday.verdict import Verdict
from stripe_emulator import EmulatorServer


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as rec:
        yield rec


def _run(
    emulator: EmulatorServer, rec: WebhookReceiver, wait_s: float = 5.0
) -> dict[str, CheckResult]:
    results = ProviderPreflight(emulator.url, rec, webhook_wait_s=wait_s).run()
    return {r.name: r for r in results}


def test_a_faithful_provider_passes(
    emulator: EmulatorServer, webhook_receiver: WebhookReceiver
) -> None:
    results = _run(emulator, webhook_receiver)
    assert {n: r.verdict for n, r in results.items()} == dict.fromkeys(results, Verdict.PASS)


def test_a_provider_ignoring_idempotency_keys_fails(
    emulator: EmulatorServer, webhook_receiver: WebhookReceiver
) -> None:
    emulator.set_faults(ignore_idempotency_keys=True)
    check = _run(emulator, webhook_receiver)["payment succeeds once per idempotency key"]
    assert check.verdict is Verdict.FAIL
    assert "succeeded for order: 2" in check.detail


def test_silent_webhooks_fail(emulator: EmulatorServer, webhook_receiver: WebhookReceiver) -> None:
    emulator.set_faults(webhook_down_for_s=3600)
    check = _run(emulator, webhook_receiver, wait_s=1.0)["webhooks signed and delivered"]
    assert check.verdict is Verdict.FAIL
    assert "payment_intent.succeeded" in check.detail


def test_a_crashing_check_is_unknown_never_pass(
    emulator: EmulatorServer, webhook_receiver: WebhookReceiver
) -> None:
    emulator.set_faults(decline_amounts=[4200])
    results = _run(emulator, webhook_receiver, wait_s=1.0)
    payment = results["payment succeeds once per idempotency key"]
    assert payment.verdict is Verdict.UNKNOWN
    assert "CardError" in payment.detail
    assert results["refunds capped at the captured amount"].verdict is not Verdict.PASS


def test_forged_webhooks_are_refused(webhook_receiver: WebhookReceiver) -> None:
    webhook_receiver.secret = "whsec_test"
    assert webhook_receiver.accept(b"{}", "t=1,v1=00") == 400
    assert webhook_receiver.rejected == 1
