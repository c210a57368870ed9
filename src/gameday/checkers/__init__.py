"""The invariants, judged after a drill from the history and the final state.

Each checker is a pure function answering pass / fail / unknown with bounded evidence:
``no_duplicate_charge``, ``no_double_booking``, ``convergence`` and ``single_application``
read the final state (``FinalState``, from ``read_state``); ``no_lost_ack`` and
``deterministic_retries`` read the history, reduced once by ``scan_history`` (a file) or
``check_history`` (operations in hand) to ``HistoryFacts``, which also carries the request
statistics unless asked not to (``stats=False``). ``run_all`` runs them all.
"""

from gameday.checkers.acks import no_lost_ack
from gameday.checkers.application import single_application
from gameday.checkers.charges import no_duplicate_charge
from gameday.checkers.compose import run_all
from gameday.checkers.converged import convergence
from gameday.checkers.facts import (
    NOT_REPLAYED,
    Answer,
    HistoryFacts,
    RetryFacts,
    check_history,
    scan_history,
)
from gameday.checkers.latency import LatencySummary, LogHistogram
from gameday.checkers.overlaps import no_double_booking
from gameday.checkers.readers import (
    QUERIES,
    ROW_LIMIT,
    DatabaseRows,
    read_database,
    read_provider,
    read_state,
)
from gameday.checkers.result import EVIDENCE_LIMIT, SEVERITY, CheckResult, Severity
from gameday.checkers.retries import deterministic_retries
from gameday.checkers.state import (
    BookingRow,
    EventRow,
    FinalState,
    IntentRow,
    OutboxRow,
    PaymentRow,
    TransitionRow,
)
from gameday.checkers.stats import RequestStats, SeriesPoint
from gameday.verdict import Verdict

__all__ = [
    "EVIDENCE_LIMIT",
    "NOT_REPLAYED",
    "QUERIES",
    "ROW_LIMIT",
    "SEVERITY",
    "Answer",
    "BookingRow",
    "CheckResult",
    "DatabaseRows",
    "EventRow",
    "FinalState",
    "HistoryFacts",
    "IntentRow",
    "LatencySummary",
    "LogHistogram",
    "OutboxRow",
    "PaymentRow",
    "RequestStats",
    "RetryFacts",
    "SeriesPoint",
    "Severity",
    "TransitionRow",
    "Verdict",
    "check_history",
    "convergence",
    "deterministic_retries",
    "no_double_booking",
    "no_duplicate_charge",
    "no_lost_ack",
    "read_database",
    "read_provider",
    "read_state",
    "run_all",
    "scan_history",
    "single_application",
]
