"""The live service under a hypothesis state machine: holds on two resources by three
customers, payments with good, declined and 3-D Secure cards under fresh and repeated
Idempotency-Keys, challenges completed at the emulator, admin cancels and refunds, and
pauses for the webhooks — with the business invariants checked after every step against
the real database and the provider's own ledger.

The invariants are pure functions over a snapshot (rows and ledger entries), so the same
functions are shown catching violations: on hand-made states, and on the unsafe variant.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import httpx
import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from stripe_emulator import EmulatorServer
from tests.bookings.support import (
    TEST_KEY,
    Call,
    ScratchDatabase,
    SmtpSink,
    Stack,
    World,
    burst,
    make_world,
    slot,
)

VISA = "4242424242424242"
DECLINE = "4000000000009995"
THREE_DS = "4000000000003220"
CARDS = [VISA, DECLINE, THREE_DS]
ACTIVE = ("held", "confirmed")
HOLD_TTL_S = 3.0  # short enough that holds expire within one example
EDGE = timedelta(seconds=0.3)

# -- what is checked: snapshots and pure invariant functions --------------------------------


@dataclass(frozen=True)
class BookingRow:
    id: int
    resource_id: int
    starts_at: datetime
    ends_at: datetime
    status: str
    hold_expires_at: datetime | None = None


@dataclass(frozen=True)
class PaymentRow:
    id: int
    booking_id: int
    status: str
    intent_id: str | None


@dataclass(frozen=True)
class Snapshot:
    bookings: Sequence[BookingRow]
    payments: Sequence[PaymentRow]
    intents: Sequence[Mapping[str, Any]]  # the emulator's ledger entries


@dataclass(frozen=True, order=True)
class PayRequest:
    user: int
    key: str
    booking: int
    card: str


Answer = tuple[int, Any]  # status, JSON body


def double_bookings(bookings: Iterable[BookingRow]) -> list[tuple[int, int]]:
    """Pairs of active bookings of one resource whose ranges overlap."""
    active = [b for b in bookings if b.status in ACTIVE]
    return [
        (a.id, b.id)
        for a, b in itertools.combinations(active, 2)
        if a.resource_id == b.resource_id and a.starts_at < b.ends_at and b.starts_at < a.ends_at
    ]


def charged(intent: Mapping[str, Any]) -> bool:
    """Money kept: succeeded, and not (fully) refunded."""
    return bool(
        intent["status"] == "succeeded" and intent["amount_refunded"] < intent["amount_received"]
    )


def double_charges(intents: Iterable[Mapping[str, Any]]) -> dict[str, list[str]]:
    """Bookings with more than one kept charge at the provider."""
    kept: dict[str, list[str]] = defaultdict(list)
    for pi in intents:
        if charged(pi):
            kept[pi["metadata"].get("booking_id", "?")].append(pi["id"])
    return {booking: ids for booking, ids in kept.items() if len(ids) > 1}


def unpaid_confirmations(snap: Snapshot) -> list[int]:
    """Confirmed bookings without a succeeded payment in our tables."""
    paid = {p.booking_id for p in snap.payments if p.status == "succeeded"}
    return [b.id for b in snap.bookings if b.status == "confirmed" and b.id not in paid]


def divergences(snap: Snapshot) -> list[str]:
    """Once quiet, the provider and our tables tell one story: a kept charge belongs to a
    confirmed booking whose payment row says succeeded, and the other way round."""
    found: list[str] = []
    bookings = {b.id: b for b in snap.bookings}
    by_intent = {p.intent_id: p for p in snap.payments if p.intent_id}
    kept = {pi["id"] for pi in snap.intents if charged(pi)}
    for pi in snap.intents:
        row = by_intent.get(pi["id"])
        booking = bookings.get(int(pi["metadata"].get("booking_id", 0)))
        if pi["id"] in kept:
            if row is None or row.status != "succeeded":
                found.append(f"{pi['id']}: charged, our payment says {row and row.status}")
            if booking is None or booking.status != "confirmed":
                found.append(f"{pi['id']}: charged, booking is {booking and booking.status}")
        elif pi["status"] == "succeeded" and row is not None and row.status != "refunded":
            found.append(f"{pi['id']}: refunded, our payment says {row.status}")
    for p in snap.payments:
        if p.status == "succeeded" and p.intent_id not in kept:
            found.append(f"payment {p.id}: succeeded here, not charged at the provider")
    return found


def replay_mismatches(answers: Mapping[PayRequest, Sequence[Answer]]) -> dict[PayRequest, int]:
    """Requests repeated under one Idempotency-Key that got more than one answer."""
    distinct = {
        r: len({json.dumps(a, sort_keys=True) for a in seen}) for r, seen in answers.items()
    }
    return {r: n for r, n in distinct.items() if n > 1}


def server_errors(
    statuses: Iterable[tuple[str, int]], deliveries: Iterable[Mapping[str, Any]]
) -> list[str]:
    """Our 5xx answers, and webhook deliveries the service did not acknowledge."""
    ours = [f"{what} -> {status}" for what, status in statuses if status >= 500]
    hooks = [
        f"webhook {d['type']} ({d['event']}) -> {d['status'] or d['error']}"
        for d in deliveries
        if d["status"] is None or not 200 <= d["status"] < 300
    ]
    return ours + hooks


# -- reading the real state -----------------------------------------------------------------

SNAPSHOT = """
    SELECT b.id, b.resource_id, b.starts_at, b.ends_at, b.status, b.hold_expires_at,
           p.id, p.status, p.provider_intent_id
      FROM bookings b LEFT JOIN payments p ON p.booking_id = b.id
     ORDER BY b.id, p.id
"""


def snapshot(db: ScratchDatabase, emulator: EmulatorServer) -> Snapshot:
    """Bookings and payments in one statement (one consistent view), then the ledger."""
    bookings: dict[int, BookingRow] = {}
    payments: list[PaymentRow] = []
    for b_id, resource, starts, ends, status, expires, p_id, p_status, intent in db.query(SNAPSHOT):
        bookings[b_id] = BookingRow(b_id, resource, starts, ends, status, expires)
        if p_id is not None:
            payments.append(PaymentRow(p_id, b_id, p_status, intent))
    return Snapshot(list(bookings.values()), payments, emulator.ledger()["payment_intents"])


def webhook_report(emulator: EmulatorServer) -> dict[str, Any]:
    response = httpx.get(
        f"{emulator.url}/_emulator/webhook_deliveries",
        headers={"Authorization": f"Bearer {TEST_KEY}"},
    )
    response.raise_for_status()
    report: dict[str, Any] = response.json()
    return report


def quiet(emulator: EmulatorServer, timeout_s: float = 10.0) -> dict[str, Any]:
    """The delivery report once no event waits for a delivery (or the timeout passed)."""
    deadline = time.monotonic() + timeout_s
    report = webhook_report(emulator)
    while report["events_pending"] and time.monotonic() < deadline:
        time.sleep(0.05)
        report = webhook_report(emulator)
    return report


# -- the state machine ----------------------------------------------------------------------


@dataclass
class Lab:
    """What outlives one hypothesis example: a database, the emulator, the SMTP sink."""

    db: ScratchDatabase
    emulator: EmulatorServer
    smtp: SmtpSink


@dataclass(frozen=True)
class Held:
    id: int
    owner: int


@dataclass
class Exchanges:
    statuses: list[tuple[str, int]] = field(default_factory=list)
    answers: dict[PayRequest, list[Answer]] = field(default_factory=lambda: defaultdict(list))
    first_use: dict[tuple[int, str], PayRequest] = field(default_factory=dict)


PICK = st.integers(0, 63)  # an index into a list the system filled, taken modulo its length


class BookingsMachine(RuleBasedStateMachine):
    """Every draw has a shape fixed by the rules run so far, never by what the service
    answered (which depends on timing): a hold that might be refused is not a Bundle entry
    and no precondition reads the service, or hypothesis could not replay a choice
    sequence and would report its own data generation as flaky. Lists the service fills
    are indexed with ``PICK`` modulo their length instead."""

    lab: ClassVar[Lab]

    def __init__(self) -> None:
        super().__init__()
        lab = self.lab
        lab.db.wipe()
        lab.emulator.reset()  # drops the webhook endpoint too: the new Stack registers one
        lab.smtp.clear()
        self.world: World = make_world(lab.db, customers=3)
        self.stack = Stack(
            lab.db, lab.emulator, lab.smtp, rate_limit_per_minute=10_000, hold_ttl_s=HOLD_TTL_S
        )
        self.stack.__enter__()
        self.seen = Exchanges()
        self.holds: list[Held] = []
        self.unsettled = False  # something happened that sends webhooks
        self.keys = itertools.count(1)
        day = datetime.now(UTC).replace(hour=8, minute=0, second=0, microsecond=0)
        self.morning = day + timedelta(days=2)

    def teardown(self) -> None:
        self.stack.__exit__()

    # -- helpers

    def post(self, path: str, headers: dict[str, str], body: Any = None) -> httpx.Response:
        response = self.stack.http.post(path, headers=headers, json=body)
        self.seen.statuses.append((f"POST {path}", response.status_code))
        error = response.json().get("error", "") if response.status_code >= 400 else ""
        event(f"POST {re.sub(r'/[0-9]+', '/{id}', path)} -> {response.status_code} {error}")
        assert response.status_code < 500, response.text
        return response

    def pay_as(self, request: PayRequest) -> httpx.Response:
        path = f"/bookings/{request.booking}/payment"
        response = self.post(
            path, self.stack.headers(request.user, request.key), {"payment_method": request.card}
        )
        self.seen.answers[request].append((response.status_code, response.json()))
        return response

    def snap(self) -> Snapshot:
        return snapshot(self.lab.db, self.lab.emulator)

    def held(self, pick: int) -> Held:
        return self.holds[pick % len(self.holds)]

    # -- rules

    @initialize()
    def two_first_holds(self) -> None:
        """One hold per resource (always granted: the database is empty), so that every
        later rule has something to act on."""
        self.hold(customer=0, resource=0, start=0, hours=2)
        self.hold(customer=1, resource=1, start=1, hours=2)

    @rule(
        customer=st.integers(0, 2),
        resource=st.integers(0, 1),
        start=st.integers(0, 9),
        hours=st.integers(1, 3),
    )
    def hold(self, customer: int, resource: int, start: int, hours: int) -> None:
        user = self.world.customers[customer]
        rid = (self.world.resource, self.world.other_resource)[resource]
        starts = self.morning + timedelta(hours=start)
        ends = starts + timedelta(hours=hours)
        now = datetime.now(UTC)
        overlapping = [
            b
            for b in self.snap().bookings
            if b.resource_id == rid and b.status in ACTIVE and b.starts_at < ends
            if starts < b.ends_at
        ]
        # A hold whose time is up does not count, even before the cleanup job marks it;
        # one expiring right now may go either way.
        unsure = any(abs(b.hold_expires_at - now) < EDGE for b in overlapping if b.hold_expires_at)
        taken = any(
            b.status == "confirmed" or (b.hold_expires_at and b.hold_expires_at > now)
            for b in overlapping
        )
        body = {"resource_id": rid, "starts_at": starts.isoformat(), "ends_at": ends.isoformat()}
        response = self.post("/bookings", self.stack.headers(user), body)
        if response.status_code == 409:  # refused only when an active booking overlaps
            assert response.json()["error"] == "slot_taken"
            assert taken or unsure, overlapping
            return
        assert response.status_code == 201, response.text
        assert unsure or not taken, overlapping
        self.holds.append(Held(response.json()["id"], user))

    @rule(
        pick=PICK,
        by_owner=st.sampled_from([True, True, True, False]),
        card=st.sampled_from([VISA, VISA, DECLINE, THREE_DS]),
    )
    def pay(self, pick: int, by_owner: bool, card: str) -> None:
        """A fresh Idempotency-Key, mostly by the booking's owner."""
        booking = self.held(pick)
        customers = self.world.customers
        user = booking.owner if by_owner else customers[(customers.index(booking.owner) + 1) % 3]
        request = PayRequest(user, f"key-{next(self.keys)}", booking.id, card)
        self.seen.first_use[(user, request.key)] = request
        self.unsettled = True
        response = self.pay_as(request)
        body = response.json()
        if not by_owner:
            assert (response.status_code, body["error"]) == (404, "booking_not_found")
        elif response.status_code == 200:
            assert (body["status"], body["booking_status"]) == ("succeeded", "confirmed")
        elif response.status_code == 202:
            assert body["status"] == "requires_action"
            assert body["next_action_url"]
        elif response.status_code == 402:
            assert (card, body["error"]) == (DECLINE, "card_declined")
        else:
            assert response.status_code == 409, response.text
            assert body["error"] in ("booking_already_paid", "hold_expired"), body

    @precondition(lambda self: self.seen.first_use)
    @rule(data=st.data(), same_body=st.booleans())
    def reuse_key(self, data: st.DataObject, same_body: bool) -> None:
        """The same request again gets the first answer, marked replayed; the same key with
        another card is refused."""
        first = data.draw(st.sampled_from(sorted(self.seen.first_use.values())))
        if same_body:
            response = self.pay_as(first)
            assert response.headers.get("Idempotent-Replayed") == "true"
            return
        card = data.draw(st.sampled_from([c for c in CARDS if c != first.card]))
        path = f"/bookings/{first.booking}/payment"
        headers = self.stack.headers(first.user, first.key)
        response = self.post(path, headers, {"payment_method": card})
        assert (response.status_code, response.json()["error"]) == (422, "idempotency_key_mismatch")

    @rule(pick=PICK, succeed=st.sampled_from([True, True, False]))
    def complete_challenge(self, pick: int, succeed: bool) -> None:
        """The customer passes (or fails) a pending 3-D Secure challenge at the provider;
        the outcome reaches the service as a webhook."""
        intents = self.lab.emulator.ledger()["payment_intents"]
        pending = sorted(pi["id"] for pi in intents if pi["status"] == "requires_action")
        self.unsettled = True
        if pending:
            self.lab.emulator.authenticate(pending[pick % len(pending)], succeed)

    @rule(pick=PICK, action=st.sampled_from(["refund", "refund", "cancel"]))
    def admin(self, pick: int, action: str) -> None:
        """Cancel a booking (refunding a paid one), or refund its payment."""
        booking = self.held(pick)
        self.unsettled = True
        if action == "cancel":
            response = self.post(f"/admin/bookings/{booking.id}/cancel", self.stack.admin)
            assert response.status_code == 200, response.text
            assert response.json()["status"] in ("canceled", "expired")
            return
        payment = next((p for p in self.snap().payments if p.booking_id == booking.id), None)
        if payment is None:
            return
        response = self.post(f"/admin/payments/{payment.id}/refund", self.stack.admin)
        body = response.json()
        if response.status_code == 200:
            assert body["status"] == "refunded"
        else:
            assert (response.status_code, body["error"]) == (409, "not_refundable"), body

    @precondition(lambda self: self.unsettled)
    @rule()
    def wait_for_webhooks(self) -> None:
        self.unsettled = False
        report = quiet(self.lab.emulator)
        assert report["events_pending"] == 0, report
        assert divergences(self.snap()) == []

    # -- after every step

    @invariant()
    def business_invariants_hold(self) -> None:
        snap = self.snap()
        assert double_bookings(snap.bookings) == []
        assert double_charges(snap.intents) == {}
        assert unpaid_confirmations(snap) == []
        assert replay_mismatches(self.seen.answers) == {}
        deliveries = webhook_report(self.lab.emulator)["attempts"]
        assert server_errors(self.seen.statuses, deliveries) == []


@pytest.fixture(scope="module")
def lab(emulator_server: EmulatorServer, smtp_server: SmtpSink) -> Iterator[Lab]:
    db = ScratchDatabase("postgresql").create()
    yield Lab(db, emulator_server, smtp_server)
    db.drop()


def test_the_live_service_keeps_its_invariants(lab: Lab) -> None:
    BookingsMachine.lab = lab
    run_state_machine_as_test(
        BookingsMachine,
        settings=settings(
            max_examples=8,
            stateful_step_count=12,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


# -- the checks can fail ----------------------------------------------------------------------

T0 = datetime(2030, 1, 1, 10, tzinfo=UTC)


def _intent(
    pi_id: str, booking: int, status: str = "succeeded", refunded: int = 0
) -> dict[str, Any]:
    received = 5000 if status == "succeeded" else 0
    return {"id": pi_id, "status": status, "amount_received": received,
            "amount_refunded": refunded, "metadata": {"booking_id": str(booking)}}  # fmt: skip


def test_the_invariants_see_violations_in_a_made_up_state() -> None:
    hour = timedelta(hours=1)
    good = Snapshot(
        bookings=[
            BookingRow(1, 7, T0, T0 + 2 * hour, "confirmed"),
            BookingRow(2, 7, T0 + 2 * hour, T0 + 3 * hour, "held"),  # adjacent: fine
            BookingRow(3, 7, T0, T0 + hour, "canceled"),  # inactive: fine
        ],
        payments=[PaymentRow(10, 1, "succeeded", "pi_a"), PaymentRow(11, 3, "refunded", "pi_c")],
        intents=[_intent("pi_a", 1), _intent("pi_c", 3, refunded=5000)],
    )
    assert (double_bookings(good.bookings), double_charges(good.intents)) == ([], {})
    assert (unpaid_confirmations(good), divergences(good)) == ([], [])

    overlapping = [*good.bookings, BookingRow(4, 7, T0 + hour, T0 + 90 * hour / 60, "held")]
    assert double_bookings(overlapping) == [(1, 4)]
    twice = [*good.intents, _intent("pi_b", 1)]
    assert double_charges(twice) == {"1": ["pi_a", "pi_b"]}
    unpaid = replace(good, payments=[replace(good.payments[0], status="requires_action")])
    assert unpaid_confirmations(unpaid) == [1]
    assert len(divergences(unpaid)) == 1  # charged at the provider, open in our table
    kept_for_canceled = replace(good, intents=[_intent("pi_a", 1), _intent("pi_c", 3)])
    assert divergences(kept_for_canceled) == [
        "pi_c: charged, our payment says refunded",
        "pi_c: charged, booking is canceled",
    ]
    request = PayRequest(1, "k", 1, VISA)
    assert replay_mismatches({request: [(200, {"a": 1}), (200, {"a": 1})]}) == {}
    assert replay_mismatches({request: [(200, {"a": 1}), (409, {"a": 1})]}) == {request: 2}
    failed_hook = {"type": "payment_intent.succeeded", "event": "evt_1", "status": 500}
    lost_hook = {**failed_hook, "status": None, "error": "ReadTimeout"}
    assert (
        server_errors([("POST /x", 201), ("POST /x", 409)], [{**failed_hook, "status": 200}]) == []
    )
    assert len(server_errors([("POST /x", 503)], [failed_hook, lost_hook])) == 3


@pytest.fixture
def fresh_pg() -> Iterator[ScratchDatabase]:
    """A database of the test's own: the unsafe variant drops the constraints of its schema."""
    db = ScratchDatabase("postgresql").create()
    yield db
    db.drop()


def test_the_invariants_catch_the_unsafe_variant(
    fresh_pg: ScratchDatabase, emulator: EmulatorServer, smtp: SmtpSink
) -> None:
    """Against the variant without safeguards (two worker processes, as deployed) the same
    functions report real violations: a repeated key re-executes (another answer), and
    concurrent payments with fresh keys and concurrent holds of one range succeed twice."""
    world = make_world(fresh_pg, customers=3)
    user = world.customers[0]
    with Stack(fresh_pg, emulator, smtp, workers=2, unsafe_no_safeguards=True) as stack:
        answers: dict[PayRequest, list[Answer]] = defaultdict(list)
        booking = stack.hold(user, world.resource, slot(days=1, hour=8)).json()["id"]
        request = PayRequest(user, "same-key", booking, VISA)
        for _ in range(2):
            r = stack.pay(user, booking, request.key, VISA)
            answers[request].append((r.status_code, r.json()))
        assert replay_mismatches(answers) == {request: 2}

        for round_no in range(10):
            when = slot(days=2 + round_no // 4, hour=8 + 3 * (round_no % 4))
            booking = stack.hold(user, world.resource, when).json()["id"]
            path = f"/bookings/{booking}/payment"
            calls = [Call("POST", path, stack.headers(user, f"k{round_no}-{i}"),
                          {"payment_method": VISA}) for i in range(10)]  # fmt: skip
            burst(stack.urls, calls)
            if double_charges(emulator.ledger()["payment_intents"]):
                break
        assert double_charges(emulator.ledger()["payment_intents"]) != {}

        for round_no in range(10):
            when = slot(days=2 + round_no // 4, hour=8 + 3 * (round_no % 4))
            body = {"resource_id": world.other_resource, "starts_at": when[0], "ends_at": when[1]}
            calls = [Call("POST", "/bookings", stack.headers(u), body) for u in world.customers * 7]
            burst(stack.urls, calls)
            if double_bookings(snapshot(fresh_pg, emulator).bookings):
                break
        assert double_bookings(snapshot(fresh_pg, emulator).bookings) != []
