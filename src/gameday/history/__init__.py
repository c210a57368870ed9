"""The operation history: what every client asked for and what it got back."""

from gameday.history.model import Op, OpType, outcome_of
from gameday.history.store import HistoryWriter, read_history

__all__ = ["HistoryWriter", "Op", "OpType", "outcome_of", "read_history"]
