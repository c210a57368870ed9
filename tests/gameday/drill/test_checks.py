"""Checks scoped to a scenario: its own bookings, and every range it asked for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gameday.checkers.state import BookingRow, FinalState
from gameday.drill.checks import run_checks, scoped
from gameday.history import Op
from gameday.verdict import Verdict

T0 = datetime(2027, 1, 1, 10, tzinfo=UTC)


def _booking(booking_id: int, hour: int, status: str = "confirmed") -> BookingRow:
    return BookingRow(booking_id, 1, 1, T0 + timedelta(hours=hour),
                      T0 + timedelta(hours=hour + 2), status)  # fmt: skip


def _state() -> FinalState:
    # 1 and 2 overlap (an earlier scenario's defect); 3 and 4 overlap (this one's).
    return FinalState(bookings=[_booking(1, 0), _booking(2, 1), _booking(3, 10), _booking(4, 11)])


def test_an_earlier_scenarios_defect_does_not_fail_this_one() -> None:
    mine = scoped(_state(), {3})
    assert [b.id for b in mine.bookings] == [3]
    (result,) = run_checks(["no_double_booking"], [], mine, 5.0)
    assert result.verdict is Verdict.PASS


def test_a_booking_made_by_an_unacknowledged_request_is_still_checked() -> None:
    asked = {(1, T0 + timedelta(hours=11), T0 + timedelta(hours=13))}  # booking 4's range
    mine = scoped(_state(), {3}, asked)
    assert sorted(b.id for b in mine.bookings) == [3, 4]
    (result,) = run_checks(["no_double_booking"], [], mine, 5.0)
    assert result.verdict is Verdict.FAIL
    assert result.evidence


def test_history_checks_share_one_pass_and_a_broken_checker_is_unknown() -> None:
    ops = [Op(index=0, type="ok", f="hold", process="p", endpoint="POST /bookings", t0=0.0,
              t1=0.1, status=201, value={"booking_id": 99})]  # fmt: skip
    lost, retries, broken = run_checks(
        ["no_lost_ack", "deterministic_retries", "no_such_checker"], ops, FinalState(), 5.0
    )
    assert lost.verdict is Verdict.FAIL  # booking 99 was acknowledged and is gone
    assert retries.verdict is Verdict.PASS
    assert broken.verdict is Verdict.UNKNOWN
