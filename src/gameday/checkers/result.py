"""What a checker answers: a verdict, a one-line summary, bounded evidence and figures.

Evidence is the offending rows themselves (booking ids, intent ids, op indexes), so the
report can show a defect without re-querying anything; it is capped at
``EVIDENCE_LIMIT`` items and the rest are only counted, because a broken run can produce a
million identical violations and the report needs the first few, not all of them.

The verdict rule is shared by every checker (``judge``): any violation found in the data
that could be read is FAIL, even when part of the data could not be read (a duplicate
charge seen in half of the intents is still a duplicate charge); otherwise a missing input
makes the answer UNKNOWN, never PASS.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gameday.verdict import Verdict

EVIDENCE_LIMIT = 50


class Severity(enum.StrEnum):
    """The playbook's defect priorities (Part 7): P0 blocks launch outright."""

    P0 = "P0"
    P1 = "P1"
    P2 = "P2"


SEVERITY: Mapping[str, Severity] = {
    # Money taken twice, one slot sold twice, one event applied twice, an answer the
    # customer was given and the system then forgot: each is a launch blocker.
    "no_duplicate_charge": Severity.P0,
    "no_double_booking": Severity.P0,
    "single_application": Severity.P0,
    "no_lost_ack": Severity.P0,
    # Wrong but mendable (reconciliation, a retry) and visible to the customer as delay or
    # confusion rather than loss.
    "convergence": Severity.P1,
    "deterministic_retries": Severity.P1,
}


@dataclass(frozen=True)
class CheckResult:
    name: str
    verdict: Verdict
    summary: str
    evidence: list[dict[str, Any]] = field(default_factory=list)
    figures: dict[str, float | int] = field(default_factory=dict)
    omitted: int = 0
    """Violations found beyond the ``EVIDENCE_LIMIT`` kept in ``evidence``."""

    @property
    def severity(self) -> Severity | None:
        return SEVERITY.get(self.name)

    def to_json(self) -> dict[str, Any]:
        severity = self.severity
        return {
            "name": self.name,
            "verdict": self.verdict.value,
            "severity": severity.value if severity is not None else None,
            "summary": self.summary,
            "evidence": self.evidence,
            "omitted": self.omitted,
            "figures": self.figures,
        }


def judge(
    name: str,
    violations: Sequence[dict[str, Any]],
    *,
    missing: Sequence[str],
    figures: Mapping[str, float | int],
    failed: str,
    passed: str,
) -> CheckResult:
    """The shared verdict rule; ``failed`` and ``passed`` are summaries, ``failed`` may use
    ``{n}`` for the number of violations."""
    figures = {**figures, "violations": len(violations)}
    kept, omitted = list(violations[:EVIDENCE_LIMIT]), max(0, len(violations) - EVIDENCE_LIMIT)
    if violations:
        summary = failed.format(n=len(violations))
        if missing:
            summary += f" (and could not read: {'; '.join(missing)})"
        return CheckResult(name, Verdict.FAIL, summary, kept, figures, omitted)
    if missing:
        summary = f"cannot tell: {'; '.join(missing)}"
        return CheckResult(name, Verdict.UNKNOWN, summary, [], figures)
    return CheckResult(name, Verdict.PASS, passed, [], figures)


def crashed(name: str, error: BaseException) -> CheckResult:
    """A checker that raised knows nothing: unknown, never pass."""
    return CheckResult(
        name, Verdict.UNKNOWN, f"the checker crashed: {type(error).__name__}: {error}"
    )
