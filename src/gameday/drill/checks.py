"""The invariant checkers a scenario names, run over its slice of the history and its part
of the final state.

A scenario is judged on the bookings it created (and their payments, provider intents,
transitions and e-mails): a defect one scenario caused must fail that scenario, not every
scenario after it, and the report must say where it came from.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, cast

from gameday import checkers
from gameday.checkers.facts import HistoryFacts
from gameday.checkers.result import SEVERITY, CheckResult, crashed
from gameday.checkers.state import FinalState
from gameday.drill.scenario import Criterion, Scenario
from gameday.history import Op

Check = Callable[[Callable[[], HistoryFacts], FinalState, float], CheckResult]
"""(the scenario's history, reduced once on first use; the final state; seconds after
which a pending payment is stuck rather than in flight)."""


CHECKS: dict[str, Check] = {
    "no_duplicate_charge": lambda _h, s, _q: checkers.no_duplicate_charge(s),
    "no_double_booking": lambda _h, s, _q: checkers.no_double_booking(s),
    "convergence": lambda _h, s, q: checkers.convergence(s, quiet_s=q),
    "single_application": lambda _h, s, _q: checkers.single_application(s),
    "no_lost_ack": lambda h, s, _q: checkers.no_lost_ack(h(), s),
    "deterministic_retries": lambda h, _s, _q: checkers.deterministic_retries(h()),
}


def invariant_criteria(scenario: Scenario) -> list[Criterion]:
    """Every checker a scenario runs counts towards its verdict: the ones its criteria do
    not already name become criteria of their own, at the checker's severity. A duplicate
    charge found while drilling a Redis outage fails that scenario too."""
    named = {c.measure for c in scenario.criteria}
    return [
        Criterion(f"Invariant holds: {name.replace('_', ' ')}", f"checks.{name}",
                  expect="pass", severity=cast("Any", str(SEVERITY[name])))
        for name in scenario.checks if f"checks.{name}" not in named
    ]  # fmt: skip


def scoped(
    state: FinalState, bookings: Iterable[int],
    ranges: Iterable[tuple[int, datetime, datetime]] = (),
) -> FinalState:  # fmt: skip
    """Only what concerns ``bookings``, and any booking of a (resource, range) in ``ranges``
    (read errors are kept: they still make checks unknown)."""
    asked = set(ranges)
    wanted = set(bookings) | {
        b.id for b in state.bookings if (b.resource_id, b.starts_at, b.ends_at) in asked
    }
    payments = [p for p in state.payments if p.booking_id in wanted]
    paid = {p.id for p in payments}
    return dataclasses.replace(
        state,
        bookings=[b for b in state.bookings if b.id in wanted],
        payments=payments,
        transitions=[t for t in state.transitions if t.payment_id in paid],
        outbox=[o for o in state.outbox if o.booking_id in wanted],
        intents=[i for i in state.intents if i.booking_id in wanted],
    )


def run_checks(
    names: Iterable[str], ops: list[Op], state: FinalState, stuck_after_s: float
) -> list[CheckResult]:
    reduced: list[HistoryFacts] = []

    def facts() -> HistoryFacts:
        if not reduced:
            reduced.append(checkers.check_history(ops, stats=False))
        return reduced[0]

    results = []
    for name in names:
        try:
            results.append(CHECKS[name](facts, state, stuck_after_s))
        except Exception as error:  # a checker bug is "unknown" with the reason, never a pass
            results.append(crashed(name, error))
    return results


def to_json(results: list[CheckResult]) -> list[dict[str, Any]]:
    return [r.to_json() for r in results]
