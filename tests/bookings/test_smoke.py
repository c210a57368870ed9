"""The critical path once, end to end, on both databases: hold, pay, confirm, email."""

from __future__ import annotations

from tests.bookings.support import ScratchDatabase, Stack, World, slot


def test_hold_pay_confirm_email(db: ScratchDatabase, stack: Stack, world: World) -> None:
    held = stack.hold(world.customers[0], world.resource, slot())
    assert held.status_code == 201, held.text
    booking = held.json()
    assert booking["status"] == "held"
    paid = stack.pay(world.customers[0], booking["id"], "key-1")
    assert paid.status_code == 200, paid.text
    assert paid.json()["status"] == "succeeded"
    assert paid.json()["booking_status"] == "confirmed"
    assert stack.wait_for(lambda: len(stack.smtp.messages) == 1)
    assert stack.smtp.subjects() == [f"Booking #{booking['id']} confirmed"]
