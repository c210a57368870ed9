"""Optional cross-check: the same happy-path SDK calls pass against localstripe.

localstripe is pip-installed in the test environment (never copied: it is GPL) and run in
its own process on 127.0.0.1; it differs from Stripe where the emulator exists to be exact
(idempotency, webhook redelivery, refund limits), so only the happy path is compared.
"""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import stripe

from gameday.stack.processes import free_port
from stripe_emulator import EmulatorServer

# Binds localstripe to loopback (its own entry point listens on every interface) and keeps
# it from writing its state to /tmp.
_LAUNCH = """
import sys
from aiohttp import web
from localstripe.resources import store
from localstripe.server import app
store.dump_to_disk = lambda: None
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
"""


@pytest.fixture(scope="module")
def localstripe_url() -> Iterator[str]:
    if importlib.util.find_spec("localstripe") is None:
        pytest.skip("localstripe is not installed (pip install localstripe to run the cross-check)")
    port = free_port()
    proc = subprocess.Popen(  # noqa: S603 - our interpreter, fixed launcher
        [sys.executable, "-c", _LAUNCH, str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("localstripe did not start")
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait(timeout=10)


def _happy_path(url: str) -> list[str]:
    """Customer, one-call payment, two-step payment with a card, full refund, listing."""
    client = stripe.StripeClient("sk_test_crosscheck", base_addresses={"api": url})
    customer = client.v1.customers.create(params={"email": "cross@example.test"})
    one_call = client.v1.payment_intents.create(
        params={"amount": 1500, "currency": "usd", "payment_method": "pm_card_visa",
                "confirm": True, "customer": customer.id},
    )  # fmt: skip
    pm = client.v1.payment_methods.create(
        params={"type": "card",
                "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2034,
                         "cvc": "123"}},
    )  # fmt: skip
    two_step = client.v1.payment_intents.create(
        params={"amount": 2000, "currency": "usd", "payment_method": pm.id}
    )
    confirmed = client.v1.payment_intents.confirm(two_step.id)
    refund = client.v1.refunds.create(params={"payment_intent": confirmed.id})
    again = client.v1.payment_intents.retrieve(one_call.id)
    return [
        customer.object,
        one_call.status,
        two_step.status,
        confirmed.status,
        str(refund.status),
        str(refund.amount),
        again.status,
        str(again.amount),
    ]


def test_happy_path_matches_localstripe(emulator: EmulatorServer, localstripe_url: str) -> None:
    ours = _happy_path(emulator.url)
    theirs = _happy_path(localstripe_url)
    expected = [
        "customer", "succeeded", "requires_confirmation", "succeeded", "succeeded", "2000",
        "succeeded", "1500",
    ]  # fmt: skip
    assert ours == expected
    assert theirs == expected
