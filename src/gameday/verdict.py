"""Pass / fail / unknown: the three answers every check in the harness may give.

"Unknown" is a first-class answer, never rounded to pass: a check whose evidence could not
be read (the database was down, an outcome was ``info``) says so.
"""

from __future__ import annotations

from enum import Enum


class Verdict(Enum):
    PASS = "pass"  # noqa: S105 - a verdict, not a password
    FAIL = "fail"
    UNKNOWN = "unknown"

    @staticmethod
    def worst(verdicts: list[Verdict]) -> Verdict:
        """FAIL beats UNKNOWN beats PASS (an empty list passes: nothing was wrong)."""
        if Verdict.FAIL in verdicts:
            return Verdict.FAIL
        if Verdict.UNKNOWN in verdicts:
            return Verdict.UNKNOWN
        return Verdict.PASS
