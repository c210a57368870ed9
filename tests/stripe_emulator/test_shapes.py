"""Object shapes against Stripe's own example objects (``fixtures3.json`` from stripe/openapi).

Real objects are made through the official SDK and compared with the fixture of their type:
the top-level key sets must be equal, and inside every nested hash where both the fixture and
ours are non-empty hashes, the fixture's keys must be present in ours (recursively). A fixture
value of another type than ours (``"shipping": {}`` where ours is ``null``, an expandable
``{"id": "obj_123"}`` where ours is an id) is a placeholder and is not descended into;
``metadata`` holds the example's own keys, not Stripe's, and is skipped. Where both values are
non-null scalars, their JSON types must agree.

The fixtures live outside the repository (``../shared/stripe/fixtures3.json``, or the file
named by ``GAMEDAY_STRIPE_FIXTURES``); without them these tests are skipped.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import orjson
import pytest
import stripe

from stripe_emulator import EmulatorServer

FIXTURES_ENV = "GAMEDAY_STRIPE_FIXTURES"
DEFAULT_FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "stripe" / "fixtures3.json"
USER_KEYS = frozenset({"metadata"})
Resources = dict[str, dict[str, Any]]


def _fixtures_path() -> Path:
    configured = os.environ.get(FIXTURES_ENV)
    return Path(configured) if configured else DEFAULT_FIXTURES


@pytest.fixture(scope="module")
def resources() -> Resources:
    path = _fixtures_path()
    if not path.is_file():
        pytest.skip(
            f"Stripe's example objects are not available at {path} (set {FIXTURES_ENV} to the "
            "path of stripe/openapi's fixtures3.json to run the shape tests)"
        )
    data = orjson.loads(path.read_bytes())
    found: Resources = data["resources"]
    return found


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def key_diff(fixture: Mapping[str, Any], ours: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """Top-level keys (missing from ours, extra in ours)."""
    return sorted(set(fixture) - set(ours)), sorted(set(ours) - set(fixture))


def nested_problems(fixture: Mapping[str, Any], ours: Mapping[str, Any], path: str) -> list[str]:
    """Missing nested keys and scalar type mismatches below ``path``, one line each."""
    problems: list[str] = []
    for key, expected in fixture.items():
        if key in USER_KEYS or key not in ours:
            continue  # a missing top-level key is reported by key_diff
        actual, where = ours[key], f"{path}.{key}"
        problems.extend(_value_problems(expected, actual, where))
    return problems


def _value_problems(expected: object, actual: object, where: str) -> list[str]:
    if isinstance(expected, dict) and isinstance(actual, dict):
        if not expected or not actual:
            return []
        missing = sorted(set(expected) - set(actual))
        found = [f"{where}: missing {missing}"] if missing else []
        return found + nested_problems(expected, actual, where)
    if isinstance(expected, list) and isinstance(actual, list):
        if not expected or not isinstance(expected[0], dict):
            return []
        found = []
        for index, item in enumerate(actual):
            found.extend(_value_problems(expected[0], item, f"{where}[{index}]"))
        return found
    kinds = _json_type(expected), _json_type(actual)
    if "null" in kinds or "object" in kinds or "array" in kinds or kinds[0] == kinds[1]:
        return []  # null on either side, or a placeholder of another type
    return [f"{where}: fixture has a {kinds[0]}, ours a {kinds[1]} ({actual!r})"]


def assert_same_shape(kind: str, fixture: Mapping[str, Any], ours: Mapping[str, Any]) -> None:
    missing, extra = key_diff(fixture, ours)
    assert (missing, extra) == ([], []), f"{kind}: missing keys {missing}, extra keys {extra}"
    problems = nested_problems(fixture, ours, kind)
    assert not problems, f"{kind}: nested shape differs from Stripe's:\n" + "\n".join(problems)


# -- the checker itself must be able to say no ---------------------------------------------------


def test_checker_reports_missing_extra_and_nested_keys() -> None:
    fixture = {
        "id": "x",
        "card": {"brand": "visa", "checks": {"cvc_check": "pass"}},
        "shipping": {"name": "placeholder"},
        "metadata": {"order_id": "1"},
        "amount": 1,
    }
    ours = {
        "id": "x",
        "card": {"brand": "visa", "checks": {"other": None}},
        "shipping": None,
        "metadata": {"mine": "2"},
        "amount": "1",
        "extra": 0,
    }
    assert key_diff(fixture, ours) == ([], ["extra"])
    assert nested_problems(fixture, ours, "t") == [
        "t.card.checks: missing ['cvc_check']",
        "t.amount: fixture has a number, ours a string ('1')",
    ]


# -- objects made through the SDK ----------------------------------------------------------------


def _paid(client: stripe.StripeClient) -> stripe.PaymentIntent:
    intent = client.v1.payment_intents.create(
        params={
            "amount": 2000,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "confirm": True,
            "description": "shape test",
        }
    )
    assert intent.status == "succeeded"
    return intent


def _refunded_charge(client: stripe.StripeClient) -> dict[str, Any]:
    intent = _paid(client)
    client.v1.refunds.create(params={"payment_intent": intent.id, "amount": 500})
    charge = client.v1.charges.retrieve(str(intent.latest_charge))
    assert charge.refunds is not None
    assert len(charge.refunds.data) == 1
    return charge.to_dict()


def _refund(client: stripe.StripeClient) -> dict[str, Any]:
    return client.v1.refunds.create(params={"payment_intent": _paid(client).id}).to_dict()


def _customer(client: stripe.StripeClient) -> dict[str, Any]:
    created = client.v1.customers.create(params={"email": "ada@example.com", "name": "Ada"})
    return client.v1.customers.retrieve(created.id).to_dict()


def _webhook_endpoint(client: stripe.StripeClient) -> dict[str, Any]:
    created = client.v1.webhook_endpoints.create(
        params={"url": "http://127.0.0.1:9/hook", "enabled_events": ["charge.succeeded"]}
    )
    return client.v1.webhook_endpoints.retrieve(created.id).to_dict()


def _payment_method(client: stripe.StripeClient) -> dict[str, Any]:
    return client.v1.payment_methods.retrieve(str(_paid(client).payment_method)).to_dict()


def _created_payment_method(client: stripe.StripeClient) -> dict[str, Any]:
    created = client.v1.payment_methods.create(
        params={"type": "card", "card": {"number": "5555555555554444", "exp_month": 8}}
    )
    return created.to_dict()


BUILDERS: dict[str, tuple[str, Callable[[stripe.StripeClient], dict[str, Any]]]] = {
    "payment_intent": ("payment_intent", lambda client: _paid(client).to_dict()),
    "charge": ("charge", _refunded_charge),
    "refund": ("refund", _refund),
    "customer": ("customer", _customer),
    "webhook_endpoint": ("webhook_endpoint", _webhook_endpoint),
    "payment_method": ("payment_method", _payment_method),
    "payment_method_created": ("payment_method", _created_payment_method),
}


@pytest.mark.parametrize("case", sorted(BUILDERS))
def test_object_has_stripes_shape(
    case: str, resources: Resources, emulator: EmulatorServer, client: stripe.StripeClient
) -> None:
    kind, build = BUILDERS[case]
    ours = build(client)
    assert ours["object"] == kind
    assert_same_shape(kind, resources[kind], ours)


def test_webhook_endpoint_create_adds_only_the_secret(
    resources: Resources, emulator: EmulatorServer, client: stripe.StripeClient
) -> None:
    created = client.v1.webhook_endpoints.create(
        params={"url": "http://127.0.0.1:9/hook", "enabled_events": ["*"], "description": "d"}
    ).to_dict()
    missing, extra = key_diff(resources["webhook_endpoint"], created)
    assert (missing, extra) == ([], ["secret"]), f"missing keys {missing}, extra keys {extra}"
    assert str(created["secret"]).startswith("whsec_")
    problems = nested_problems(resources["webhook_endpoint"], created, "webhook_endpoint")
    assert not problems, "\n".join(problems)


def test_events_have_stripes_shape_and_carry_stripe_shaped_objects(
    resources: Resources, emulator: EmulatorServer, client: stripe.StripeClient
) -> None:
    intent = _paid(client)
    client.v1.refunds.create(params={"payment_intent": intent.id})
    client.v1.customers.create(params={"email": "ada@example.com"})
    listed = client.v1.events.list(params={"limit": 100})
    events = [event.to_dict() for event in listed.data]
    kinds = {event["data"]["object"]["object"] for event in events}
    assert kinds == {"payment_intent", "charge", "refund", "customer"}
    fixture = resources["event"]
    for event in events:
        label = f"event {event['type']}"
        missing, extra = key_diff(fixture, event)
        assert (missing, extra) == ([], []), f"{label}: missing keys {missing}, extra keys {extra}"
        missing, extra = key_diff(fixture["request"], event["request"])
        assert (missing, extra) == ([], []), f"{label}.request: missing {missing}, extra {extra}"
        assert "object" in event["data"], f"{label}: data has no object"
        obj = event["data"]["object"]
        assert_same_shape(f"{label}.data.object", resources[obj["object"]], obj)
