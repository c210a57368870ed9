"""Schemathesis over the service's OpenAPI document, against a running service on
PostgreSQL: every operation, positive and negative inputs, and no answer is a 5xx.

Requests carry a customer's bearer token (and the admin token on ``/admin``) so they get
past authentication; half of the cases are *grounded* — their ids replaced by ids that
exist (a fresh hold, a paid booking, a stored webhook event) and the payment body given a
real test card and an Idempotency-Key — so the fuzzing reaches the provider, settlement and
the admin actions instead of stopping at 404s.

The document is the app's own ``openapi()``, built at import because pytest collects the
operations before any server runs; one test checks that the running service serves exactly
that document. (``schemathesis.pytest.from_fixture`` would load it from the server, but
in schemathesis 4.32 it writes ``Function._nodeid``, which pytest 9 no longer has.)
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import settings
from hypothesis import strategies as st
from schemathesis import Case
from schemathesis.checks import CheckFunction, not_a_server_error
from schemathesis.core.failures import ServerError
from schemathesis.errors import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy.engine import make_url

from bookings.api.app import create_app
from bookings.settings import Settings
from stripe_emulator import EmulatorServer
from tests.bookings.support import (
    ADMIN_TOKEN,
    SERVER_URLS,
    ScratchDatabase,
    SmtpSink,
    Stack,
    TcpRelay,
    World,
    make_world,
    slot,
)

DOCUMENT = create_app(Settings(environment="test")).openapi()
SCHEMA = schemathesis.openapi.from_dict(DOCUMENT)
CHECKS: list[CheckFunction] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
METHODS = ["4242424242424242", "4000000000009995", "4000000000003220", "pm_card_visa", "pm_nope"]
FLAGS = ["REDIS_OPTIONAL_FALLBACK", "WEBHOOK_DEDUP_ENABLED"]  # harmless to flip here
AnyCase = Case[Any]


@dataclass
class Api:
    """The running service, its data, and the ids a grounded case may use."""

    stack: Stack
    db: ScratchDatabase
    world: World
    slots: Iterator[int] = field(default_factory=itertools.count)

    @property
    def user(self) -> int:
        return self.world.customers[0]

    def headers_for(self, case: AnyCase) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.stack.token(self.user)}"}
        if case.path.startswith("/admin"):
            headers["X-Admin-Token"] = ADMIN_TOKEN
        return headers

    def fresh_hold(self) -> int:
        n = next(self.slots)
        response = self.stack.hold(self.user, self.world.resource, slot(1 + n // 12, 7 + n % 12, 1))
        assert response.status_code == 201, response.text
        return int(response.json()["id"])

    def paid_booking(self) -> tuple[int, int]:
        booking = self.fresh_hold()
        paid = self.stack.pay(self.user, booking, f"setup-{booking}")
        assert paid.status_code == 200, paid.text
        return booking, int(paid.json()["payment_id"])

    def an_event(self) -> str:
        return str(self.db.scalar("SELECT id FROM webhook_events ORDER BY received_at LIMIT 1"))

    def ground(self, case: AnyCase, data: st.DataObject) -> None:
        """Swap generated ids for real ones (and a real card into a payment)."""
        params = case.path_parameters if case.path_parameters is not None else {}
        if "booking_id" in params:
            confirmed = "resend" in case.path or data.draw(st.booleans())
            params["booking_id"] = self.paid_booking()[0] if confirmed else self.fresh_hold()
        if "payment_id" in params:
            params["payment_id"] = self.paid_booking()[1]
        if "resource_id" in params:
            params["resource_id"] = self.world.resource
        if "event_id" in params:
            params["event_id"] = self.an_event()
        if "name" in params:
            params["name"] = data.draw(st.sampled_from(FLAGS))
        body = case.body
        if isinstance(body, dict) and "resource_id" in body:
            n = next(self.slots)
            start, end = slot(1 + n // 12, 7 + n % 12, 1)
            body.update(resource_id=self.world.resource, starts_at=start, ends_at=end)
        if isinstance(body, dict) and "payment_method" in body:
            body["payment_method"] = data.draw(st.sampled_from(METHODS))
            case.headers["Idempotency-Key"] = f"g-{next(self.slots)}"


@pytest.fixture(scope="module")
def api(emulator_server: EmulatorServer, smtp_server: SmtpSink) -> Iterator[Api]:
    db = ScratchDatabase("postgresql").create()
    emulator_server.reset()
    smtp_server.clear()
    with Stack(db, emulator_server, smtp_server, rate_limit_per_minute=100_000) as stack:
        running = Api(stack, db, make_world(db))
        running.paid_booking()  # so that there is a stored webhook event to replay
        assert stack.wait_for(lambda: db.scalar("SELECT COUNT(*) FROM webhook_events") > 0)
        yield running
    db.drop()


@SCHEMA.parametrize()
@SCHEMA.given(data=st.data())
@settings(max_examples=25, deadline=None)
def test_no_operation_answers_with_a_server_error(
    case: AnyCase, data: st.DataObject, api: Api
) -> None:
    if data.draw(st.booleans(), label="grounded"):
        api.ground(case, data)
    case.call_and_validate(base_url=api.stack.url, headers=api.headers_for(case), checks=CHECKS)


def test_the_fuzzed_document_is_the_one_served(api: Api) -> None:
    served = api.stack.http.get("/openapi.json")
    assert served.status_code == 200
    assert served.json() == DOCUMENT


def test_the_server_error_check_can_fail(
    emulator_server: EmulatorServer, smtp: SmtpSink, pg: ScratchDatabase, world: World
) -> None:
    """The same checks, on a case of the same schema, against a service whose database
    has gone away: the 503 it answers is reported as a server error."""
    server = make_url(SERVER_URLS["postgresql"])
    relay = TcpRelay(server.port or 5432)
    url = server.set(port=relay.port, database=pg.name).render_as_string(hide_password=False)
    try:
        with Stack(pg, emulator_server, smtp, database_url=url) as stack:
            case = SCHEMA["/resources"]["GET"].Case()
            headers = {"Authorization": f"Bearer {stack.token(world.customers[0])}"}
            case.call_and_validate(base_url=stack.url, headers=headers, checks=CHECKS)
            relay.down()
            with pytest.raises(FailureGroup) as caught:
                case.call_and_validate(base_url=stack.url, headers=headers, checks=CHECKS)
            [failure] = caught.value.exceptions
            assert isinstance(failure, ServerError)
            assert failure.status_code == 503
            assert httpx.get(f"{stack.url}/health/live").status_code == 200
    finally:
        relay.close()
