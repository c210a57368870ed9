"""The shared verdict rule, bounded evidence, severities, and the public API."""

from __future__ import annotations

import importlib
from pathlib import Path

import gameday.checkers
from gameday.checkers import (
    EVIDENCE_LIMIT,
    SEVERITY,
    Severity,
    Verdict,
)
from gameday.checkers.result import judge

NAMES = [
    "no_duplicate_charge",
    "no_double_booking",
    "convergence",
    "single_application",
    "no_lost_ack",
    "deterministic_retries",
]


def test_violations_fail_even_with_missing_inputs_and_missing_inputs_never_pass() -> None:
    kw = {"figures": {}, "failed": "{n} bad", "passed": "fine"}
    assert judge("x", [], missing=[], **kw).verdict is Verdict.PASS  # type: ignore[arg-type]
    unknown = judge("x", [], missing=["payments: gone"], **kw)  # type: ignore[arg-type]
    assert (unknown.verdict, unknown.summary) == (Verdict.UNKNOWN, "cannot tell: payments: gone")
    failed = judge("x", [{"a": 1}], missing=["payments: gone"], **kw)  # type: ignore[arg-type]
    assert failed.verdict is Verdict.FAIL
    assert failed.summary == "1 bad (and could not read: payments: gone)"


def test_evidence_is_bounded_and_the_rest_counted() -> None:
    result = judge(
        "no_double_booking",
        [{"i": i} for i in range(EVIDENCE_LIMIT + 7)],
        missing=[],
        figures={"n": 1},
        failed="{n} bad",
        passed="",
    )
    assert len(result.evidence) == EVIDENCE_LIMIT
    assert result.evidence[0] == {"i": 0}
    assert result.omitted == 7
    assert result.to_json() == {
        "name": "no_double_booking",
        "verdict": "fail",
        "severity": "P0",
        "summary": f"{EVIDENCE_LIMIT + 7} bad",
        "evidence": result.evidence,
        "omitted": 7,
        "figures": {"n": 1, "violations": EVIDENCE_LIMIT + 7},
    }


def test_every_checker_has_a_severity() -> None:
    assert sorted(SEVERITY) == sorted(NAMES)
    assert {n for n, s in SEVERITY.items() if s is Severity.P1} == {
        "convergence",
        "deterministic_retries",
    }


def test_all_is_complete() -> None:
    module = importlib.import_module("gameday.checkers")
    submodules = {p.stem for p in Path(module.__file__ or "").parent.glob("*.py")}
    public = {n for n in vars(module) if not n.startswith("_")} - submodules
    assert set(gameday.checkers.__all__) == public
