"""Running every checker at once: all answer, in order, and a crash is unknown."""

from __future__ import annotations

from collections.abc import Iterator

from gameday.checkers import FinalState, Verdict, run_all
from gameday.history import Op

NAMES = [
    "no_duplicate_charge",
    "no_double_booking",
    "convergence",
    "single_application",
    "no_lost_ack",
    "deterministic_retries",
]


def test_run_all_answers_every_invariant_in_order() -> None:
    results = run_all([], FinalState(), emails={})
    assert [r.name for r in results] == NAMES
    assert {r.verdict for r in results} == {Verdict.PASS}


def test_a_crashing_checker_is_unknown_and_the_others_still_answer() -> None:
    broken = FinalState(bookings=[object()])  # type: ignore[list-item]
    results = {r.name: r for r in run_all([], broken)}
    assert results["no_double_booking"].verdict is Verdict.UNKNOWN
    assert "crashed" in results["no_double_booking"].summary
    assert results["deterministic_retries"].verdict is Verdict.PASS


def test_an_unreadable_history_makes_every_checker_unknown() -> None:
    class Unreadable:
        def __iter__(self) -> Iterator[Op]:
            raise OSError("disk gone")

    results = run_all(Unreadable(), FinalState())
    assert {r.verdict for r in results} == {Verdict.UNKNOWN}
