"""Safeguard 2, payment idempotency, and the checkout boundary (safeguard 4): however the
client storms, retries or mixes keys, one booking is charged at most once — proven against
the real emulator's ledger on both databases, and shown to fail on the unsafe variant."""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import time
import uuid
from typing import Any

import httpx
import pytest

from stripe_emulator import EmulatorServer
from tests.bookings.support import (
    Call,
    ScratchDatabase,
    SmtpSink,
    Stack,
    World,
    burst,
    bursts,
    make_world,
    slot,
)

STORM = 100
STORM_ROUNDS = 3
VISA = "4242424242424242"
DECLINE = "4000000000009995"
THREE_DS = "4000000000003220"


def succeeded(stack: Stack, booking_id: int) -> list[dict[str, Any]]:
    """Charges that stuck: succeeded and not refunded, per the provider's own ledger."""
    return [
        pi
        for pi in stack.intents(booking_id)
        if pi["status"] == "succeeded" and pi["amount_refunded"] < pi["amount_received"]
    ]


def pay_call(stack: Stack, user: int, booking_id: int, key: str, card: str = VISA) -> Call:
    return Call("POST", f"/bookings/{booking_id}/payment", stack.headers(user, key),
                {"payment_method": card})  # fmt: skip


def test_a_storm_on_one_key_charges_once_with_identical_answers(
    db: ScratchDatabase, workers: Stack, world: World
) -> None:
    """100 requests with one Idempotency-Key at the same instant, over two worker
    processes, for 3 bookings: one execution, one intent, the same answer every time."""
    stack, user = workers, world.customers[0]
    bookings = [
        stack.hold(user, world.resource, slot(days=1, hour=8 + 2 * n)).json()["id"]
        for n in range(STORM_ROUNDS)
    ]
    keys = [f"storm-{uuid.uuid4()}" for _ in bookings]
    rounds = [[pay_call(stack, user, b, k)] * STORM for b, k in zip(bookings, keys, strict=True)]
    for booking_id, key, answers in zip(bookings, keys, bursts(stack.urls, rounds), strict=True):
        kinds = collections.Counter(
            r.status_code if r.status_code == 200 else r.json()["error"] for r in answers
        )
        assert set(kinds) <= {200, "idempotency_in_progress"}, kinds
        assert kinds[200] >= 1
        bodies = {r.text for r in answers if r.status_code == 200}
        assert len(bodies) == 1, bodies
        again = stack.pay(user, booking_id, key)
        assert again.headers["Idempotent-Replayed"] == "true"
        assert again.text in bodies
        assert len(stack.intents(booking_id)) == 1
        assert len(succeeded(stack, booking_id)) == 1
    assert db.scalar("SELECT COUNT(*) FROM payments") == STORM_ROUNDS


def test_mixed_keys_for_one_booking_still_charge_once(
    db: ScratchDatabase, workers: Stack, world: World
) -> None:
    stack, user = workers, world.customers[0]
    for round_no in range(3):
        booking = stack.hold(user, world.resource, slot(days=2, hour=8 + 2 * round_no)).json()
        calls = [
            pay_call(stack, user, booking["id"], f"mixed-{i}-{uuid.uuid4()}") for i in range(30)
        ]
        answers = burst(stack.urls, calls)
        codes = collections.Counter(
            r.status_code if r.status_code == 200 else r.json()["error"] for r in answers
        )
        assert set(codes) <= {200, "payment_in_progress", "booking_already_paid"}, codes
        assert codes[200] == 1, codes
        assert len(stack.intents(booking["id"])) == 1  # one intent per booking, ever
        assert len(succeeded(stack, booking["id"])) == 1


def test_answers_dropped_after_processing_still_charge_once(
    db: ScratchDatabase, stack: Stack, world: World
) -> None:
    """The provider processes the request, then the connection dies (every time, SDK
    retries included): the client's retry with the same key finds the same intent."""
    user = world.customers[0]
    booking = stack.hold(user, world.resource, slot()).json()
    stack.emulator.set_faults(drop_rate=1.0)
    failed = stack.pay(user, booking["id"], "drop-1")
    assert (failed.status_code, failed.json()["error"]) == (503, "payment_provider_unavailable")
    assert failed.headers["Retry-After"]
    assert stack.emulator.fault_counts()["dropped_connections"] >= 1
    stack.emulator.clear_faults()
    time.sleep(stack.settings.provider_breaker_reset_s)
    paid = stack.pay(user, booking["id"], "drop-1")
    assert paid.status_code == 200, paid.text
    assert len(stack.intents(booking["id"])) == 1
    assert len(succeeded(stack, booking["id"])) == 1


def test_half_of_the_answers_dropped_during_a_storm(
    db: ScratchDatabase, workers: Stack, world: World
) -> None:
    stack, user = workers, world.customers[0]
    booking = stack.hold(user, world.resource, slot(days=3)).json()
    stack.emulator.set_faults(drop_rate=0.5, seed=7)
    key = "drop-storm"
    for _ in range(5):
        answers = burst(stack.urls, [pay_call(stack, user, booking["id"], key)] * 20)
        if any(r.status_code == 200 for r in answers):
            break
        time.sleep(0.6)
    stack.emulator.clear_faults()
    assert stack.wait_for(lambda: stack.pay(user, booking["id"], key).status_code == 200, 15)
    assert len(stack.intents(booking["id"])) == 1
    assert len(succeeded(stack, booking["id"])) == 1


def test_a_worker_killed_mid_payment_leaves_one_charge(
    pg: ScratchDatabase, emulator: EmulatorServer, smtp: SmtpSink
) -> None:
    """SIGKILL the worker while the provider is answering; after the key's lease the retry
    runs again on the other worker with the same derived provider keys."""
    world = make_world(pg)
    with Stack(pg, emulator, smtp, workers=2, payment_lease_s=2.0) as stack:
        user = world.customers[0]
        booking = stack.hold(user, world.resource, slot()).json()
        emulator.set_faults(latency_ms=1500)
        path, body = f"/bookings/{booking['id']}/payment", {"payment_method": VISA}
        with (
            httpx.Client(base_url=stack.urls[0]) as client,
            contextlib.suppress(httpx.TimeoutException),
        ):
            client.post(path, headers=stack.headers(user, "crash-1"), json=body, timeout=0.7)
        os.kill(stack.procs[0].pid, signal.SIGKILL)
        emulator.clear_faults()
        other = httpx.Client(base_url=stack.urls[1], timeout=10)
        first = other.post(path, headers=stack.headers(user, "crash-1"), json=body)
        assert (first.status_code, first.json()["error"]) == (409, "idempotency_in_progress")

        def retried() -> bool:
            again = other.post(path, headers=stack.headers(user, "crash-1"), json=body)
            return again.status_code == 200

        assert stack.wait_for(retried, 10)
        other.close()
        assert len(stack.intents(booking["id"])) == 1
        assert len(succeeded(stack, booking["id"])) == 1


def test_the_same_key_with_another_body_is_refused(stack: Stack, world: World) -> None:
    user = world.customers[0]
    booking = stack.hold(user, world.resource, slot()).json()
    assert stack.pay(user, booking["id"], "k", DECLINE).status_code == 402
    other = stack.pay(user, booking["id"], "k", VISA)
    assert (other.status_code, other.json()["error"]) == (422, "idempotency_key_mismatch")
    missing = stack.http.post(f"/bookings/{booking['id']}/payment", headers=stack.headers(user),
                              json={"payment_method": VISA})  # fmt: skip
    assert (missing.status_code, missing.json()["error"]) == (422, "idempotency_key_required")


def test_a_decline_then_another_card_uses_the_same_intent(stack: Stack, world: World) -> None:
    user = world.customers[0]
    booking = stack.hold(user, world.resource, slot()).json()
    declined = stack.pay(user, booking["id"], "try-1", DECLINE)
    assert declined.status_code == 402
    assert declined.json()["error"] == "card_declined"
    assert declined.json()["details"]["decline_code"] == "insufficient_funds"
    replay = stack.pay(user, booking["id"], "try-1", DECLINE)
    assert replay.json() == declined.json()
    paid = stack.pay(user, booking["id"], "try-2", VISA)
    assert paid.status_code == 200
    assert len(stack.intents(booking["id"])) == 1
    assert len(succeeded(stack, booking["id"])) == 1
    again = stack.pay(user, booking["id"], "try-3", VISA)
    assert (again.status_code, again.json()["error"]) == (409, "booking_already_paid")


def test_3d_secure_confirms_through_the_webhook(stack: Stack, world: World) -> None:
    user = world.customers[0]
    booking = stack.hold(user, world.resource, slot()).json()
    pending = stack.pay(user, booking["id"], "3ds-1", THREE_DS)
    assert pending.status_code == 202, pending.text
    assert pending.json()["status"] == "requires_action"
    assert pending.json()["next_action_url"]
    stack.emulator.authenticate(pending.json()["payment_intent"])
    assert stack.wait_for(
        lambda: (
            stack.http.get(f"/bookings/{booking['id']}", headers=stack.headers(user)).json()[
                "status"
            ]
            == "confirmed"
        )
    )
    assert stack.wait_for(lambda: len(stack.smtp.messages) == 1)


def test_an_expired_token_is_refused_before_any_provider_call(stack: Stack, world: World) -> None:
    user = world.customers[0]
    booking = stack.hold(user, world.resource, slot()).json()
    headers = {**stack.headers(user, "late", ttl_s=1), "Content-Type": "application/json"}
    time.sleep(1.2)
    late = stack.http.post(f"/bookings/{booking['id']}/payment", headers=headers,
                           json={"payment_method": VISA})  # fmt: skip
    assert (late.status_code, late.json()["error"]) == (401, "token_expired")
    assert stack.intents() == []
    fresh = stack.pay(user, booking["id"], "late")  # re-authenticated, same key: a clean resume
    assert fresh.status_code == 200


def test_paying_for_an_expired_hold_is_refused(
    pg: ScratchDatabase, emulator: EmulatorServer, smtp: SmtpSink
) -> None:
    world = make_world(pg)
    with Stack(pg, emulator, smtp, hold_ttl_s=0.5) as stack:
        user = world.customers[0]
        booking = stack.hold(user, world.resource, slot()).json()
        time.sleep(0.7)
        late = stack.pay(user, booking["id"], "too-late")
        assert (late.status_code, late.json()["error"]) == (409, "hold_expired")
        assert stack.intents() == []


def test_a_payment_that_outlives_its_hold(
    pg: ScratchDatabase, emulator: EmulatorServer, smtp: SmtpSink
) -> None:
    """3-D Secure finishes after the hold expired: the booking is confirmed if its range is
    still free, and refunded automatically if someone else took it — never paid-unbooked."""
    world = make_world(pg)
    with Stack(pg, emulator, smtp, hold_ttl_s=1.0) as stack:
        a, b = world.customers[0], world.customers[1]
        free = stack.hold(a, world.resource, slot(hour=8)).json()
        taken = stack.hold(a, world.resource, slot(hour=12)).json()
        pis = {
            bid: stack.pay(a, bid, f"k-{bid}", THREE_DS).json()["payment_intent"]
            for bid in (free["id"], taken["id"])
        }
        time.sleep(1.3)
        assert stack.wait_for(
            lambda: pg.scalar("SELECT COUNT(*) FROM bookings WHERE status = 'expired'") == 2
        )
        assert stack.hold(b, world.resource, slot(hour=12)).status_code == 201
        for pi in pis.values():
            stack.emulator.authenticate(pi)

        def status(bid: int) -> tuple[str, str]:
            row = pg.query("SELECT b.status, p.status FROM bookings b JOIN payments p "
                           "ON p.booking_id = b.id WHERE b.id = :i", i=bid)[0]  # fmt: skip
            return row[0], row[1]

        assert stack.wait_for(lambda: status(free["id"]) == ("confirmed", "succeeded"))
        assert stack.wait_for(lambda: status(taken["id"]) == ("expired", "refunded"))
        refunds = stack.emulator.ledger()["refunds"]
        assert [r["payment_intent"] for r in refunds] == [pis[taken["id"]]]
        assert len(succeeded(stack, free["id"])) == 1
        assert succeeded(stack, taken["id"]) == []


@pytest.mark.parametrize("fresh_db", ["postgresql", "mariadb"], indirect=True)
def test_the_unsafe_variant_is_caught_charging_twice(
    fresh_db: ScratchDatabase, emulator: EmulatorServer, smtp: SmtpSink
) -> None:
    """The same storm against the variant without idempotency: the checks must fail."""
    world = make_world(fresh_db)
    with Stack(fresh_db, emulator, smtp, workers=2, unsafe_no_safeguards=True) as stack:
        user = world.customers[0]
        booking = stack.hold(user, world.resource, slot()).json()
        answers = burst(stack.urls, [pay_call(stack, user, booking["id"], "same")] * 20)
        paid = [r for r in answers if r.status_code == 200]
        assert len(paid) > 1
        assert len({r.json()["payment_intent"] for r in paid}) == len(paid)  # a charge each
        assert len(succeeded(stack, booking["id"])) > 1
        assert (
            fresh_db.scalar(
                "SELECT COUNT(*) FROM payments WHERE status = 'succeeded' AND booking_id = :b",
                b=booking["id"],
            )
            > 1
        )


def test_an_admin_cancel_during_3d_secure_cancels_the_intent(stack: Stack, world: World) -> None:
    """The customer cannot be charged by finishing the challenge after the cancel."""
    user = world.customers[0]
    booking = stack.hold(user, world.resource, slot()).json()
    pending = stack.pay(user, booking["id"], "3ds-cancel", THREE_DS)
    assert pending.status_code == 202
    canceled = stack.http.post(f"/admin/bookings/{booking['id']}/cancel", headers=stack.admin)
    assert canceled.json()["status"] == "canceled"
    [intent] = stack.intents(booking["id"])
    assert intent["status"] == "canceled"
    with pytest.raises(Exception, match="canceled"):
        stack.emulator.authenticate(intent["id"])
    assert succeeded(stack, booking["id"]) == []
    status = stack.db.scalar("SELECT status FROM payments WHERE booking_id = :b", b=booking["id"])
    assert status == "canceled"
