"""The Go/No-Go gate (playbook Part 6): thresholds, blockers, risks, decision."""

from gameday.gate.decide import EXIT_CODES, Blocker, Decision, GateResult, decide
from gameday.gate.journal import Journal, JournalError, parse_journal, read_journal
from gameday.gate.risk import InputError, load_accepted, load_risk_config

__all__ = [
    "EXIT_CODES", "Blocker", "Decision", "GateResult", "InputError", "Journal", "JournalError",
    "decide", "load_accepted", "load_risk_config", "parse_journal", "read_journal",
]  # fmt: skip
