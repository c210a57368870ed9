"""All the checkers over one history and one final state, each answer kept apart.

The history is reduced once (``check_history`` or ``scan_history``) and shared. A checker
that raises answers UNKNOWN with the error as its summary: a crash is never a pass, and
one broken checker does not hide the others' answers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from gameday.checkers.acks import no_lost_ack
from gameday.checkers.application import single_application
from gameday.checkers.charges import no_duplicate_charge
from gameday.checkers.converged import QUIET_S, convergence
from gameday.checkers.facts import HistoryFacts, check_history
from gameday.checkers.overlaps import no_double_booking
from gameday.checkers.result import CheckResult, crashed
from gameday.checkers.retries import deterministic_retries
from gameday.checkers.state import FinalState
from gameday.history import Op

Check = Callable[[HistoryFacts, FinalState], CheckResult]


def run_all(
    ops: HistoryFacts | Iterable[Op], state: FinalState,
    emails: Mapping[int, int] | None = None, *, quiet_s: float = QUIET_S,
) -> list[CheckResult]:  # fmt: skip
    """The six invariants, in the playbook's order; ``emails`` is delivered emails per
    booking, if the drill counted them."""
    checks: dict[str, Check] = {
        "no_duplicate_charge": lambda _, s: no_duplicate_charge(s),
        "no_double_booking": lambda _, s: no_double_booking(s),
        "convergence": lambda _, s: convergence(s, quiet_s),
        "single_application": lambda _, s: single_application(s, emails),
        "no_lost_ack": no_lost_ack,
        "deterministic_retries": lambda h, _: deterministic_retries(h),
    }
    try:
        facts = ops if isinstance(ops, HistoryFacts) else check_history(ops, stats=False)
    except Exception as error:
        return [crashed(name, error) for name in checks]
    results = []
    for name, check in checks.items():
        try:
            results.append(check(facts, state))
        except Exception as error:
            results.append(crashed(name, error))
    return results
