"""A criterion against the measurements: pass, fail, or unknown when the figure is missing."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from gameday.drill.scenario import Criterion
from gameday.verdict import Verdict


@dataclass(frozen=True, slots=True)
class Judged:
    criterion: Criterion
    verdict: Verdict
    measured: Any
    why: str

    def to_json(self) -> dict[str, Any]:
        c = self.criterion
        bound = (
            f"= {c.expect}"
            if c.expect
            else " and ".join(
                part
                for part in (
                    f"≤ {c.max:g}" if c.max is not None else "",
                    f"≥ {c.min:g}" if c.min is not None else "",
                )
                if part
            )
        )
        measured = self.measured
        if isinstance(measured, float) and math.isnan(measured):
            measured = None
        return {
            "text": c.text,
            "measure": c.measure,
            "threshold": bound,
            "measured": measured,
            "verdict": self.verdict.value,
            "severity": c.severity,
            "why": self.why,
        }


def judge(criterion: Criterion, measures: dict[str, Any]) -> Judged:  # noqa: PLR0911
    value = measures.get(criterion.measure)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return Judged(criterion, Verdict.UNKNOWN, None, "not measured")
    if criterion.expect is not None:
        if value == Verdict.UNKNOWN.value:  # a checker that could not tell: not a failure
            return Judged(criterion, Verdict.UNKNOWN, value, "the check could not tell")
        ok = str(value) == criterion.expect
        return Judged(
            criterion,
            Verdict.PASS if ok else Verdict.FAIL,
            value,
            "" if ok else f"{value} (expected {criterion.expect})",
        )
    if isinstance(value, str):
        return Judged(criterion, Verdict.UNKNOWN, value, "not a number")
    number = float(value)
    if criterion.max is not None and number > criterion.max:
        return Judged(criterion, Verdict.FAIL, number, f"{number:g} > {criterion.max:g}")
    if criterion.min is not None and number < criterion.min:
        return Judged(criterion, Verdict.FAIL, number, f"{number:g} < {criterion.min:g}")
    return Judged(criterion, Verdict.PASS, number, "")
