"""Shared fixtures: one real emulator (uvicorn on 127.0.0.1) per session, reset per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import stripe

from stripe_emulator import EmulatorServer, Settings
from stripe_emulator.webhooks import DeliverySettings
from tests.helpers import Receiver

TEST_KEY = "sk_test_gameday_tests"


@pytest.fixture(scope="session")
def emulator_server() -> Iterator[EmulatorServer]:
    settings = Settings(delivery=DeliverySettings(timeout_s=2.0, retry_base_s=60.0))
    with EmulatorServer(settings) as server:
        yield server


@pytest.fixture
def emulator(emulator_server: EmulatorServer) -> EmulatorServer:
    """The session's emulator, emptied: no objects, keys, faults or pending deliveries."""
    emulator_server.reset()
    return emulator_server


@pytest.fixture
def make_client(emulator: EmulatorServer) -> Callable[..., stripe.StripeClient]:
    def make(retries: int = 0, key: str = TEST_KEY) -> stripe.StripeClient:
        return stripe.StripeClient(
            key, base_addresses={"api": emulator.url}, max_network_retries=retries
        )

    return make


@pytest.fixture
def client(make_client: Callable[..., stripe.StripeClient]) -> stripe.StripeClient:
    """An SDK client that does not retry, so every answer is visible to the test."""
    return make_client(0)


@pytest.fixture
def receiver(client: stripe.StripeClient) -> Iterator[Receiver]:
    """A verifying webhook receiver registered for every event type."""
    with Receiver() as rec:
        endpoint = client.v1.webhook_endpoints.create(
            params={"url": rec.url, "enabled_events": ["*"]}
        )
        rec.secret = endpoint.secret or ""
        yield rec
