"""The journal is one valid JSON document at every moment, and report.md renders from it."""

from __future__ import annotations

import math
from pathlib import Path

import orjson

from gameday.drill.journal import Journal, load_journal
from gameday.drill.report import key_figures
from gameday.gate import decide, parse_journal
from gameday.report.build import context, render_markdown


def _scenario(verdict: str) -> dict[str, object]:
    return {
        "id": 1, "title": "Payment double-click storm", "playbook": "000 Part 3, row 1",
        "kind": "payment", "mandatory": True, "verdict": verdict,
        "criteria": [{"text": "Duplicate charges | = 0", "measure": "checks.x",
                      "threshold": "= pass", "measured": "fail", "verdict": "fail",
                      "severity": "P0", "why": "2 > 0"}],
        "checks": [{"name": "no_duplicate_charge", "verdict": "fail", "summary": "1 problem",
                    "evidence": [{"booking_id": 7, "intent_ids": ["pi_1", "pi_2"]}]}],
        "faults": [], "alerts": [], "errors": [],
        "measures": {"same_key.succeeded_intents": 2.0, "x.p95_s": math.nan},
        "rollback": [{"action": "reconcile", "ok": True, "detail": "refunded 1"}],
    }  # fmt: skip


def test_the_journal_is_valid_after_every_save_and_nan_becomes_null(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.event(1.5, "inject", "down", target="db")
    journal.data["scenarios"].append(_scenario("fail"))
    journal.save()
    data = load_journal(tmp_path / "journal.json")
    assert data["status"] == "running"
    assert data["scenarios"][0]["measures"]["x.p95_s"] is None
    journal.finish("aborted", "interrupted")
    data = load_journal(tmp_path / "journal.json")
    assert (data["status"], data["abort_reason"]) == ("aborted", "interrupted")
    assert not list(tmp_path.glob("*.tmp"))


def test_the_markdown_report_carries_verdicts_evidence_and_rollback(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.data["scenarios"].append(_scenario("fail"))
    journal.data["summary"] = {"verdict": "fail", "scenarios": 1, "fail": 1}
    typed = parse_journal(orjson.loads(orjson.dumps(journal.data)))
    text = render_markdown(context(typed, journal.data, decide(typed)))
    assert "## 1. Payment double-click storm — FAIL" in text
    assert "Duplicate charges \\| = 0" in text  # a pipe cannot break the table
    assert "pi_1" in text
    assert "reconcile: done — refunded 1" in text
    assert "Decision: NO-GO" in text.split("## Pre-flight")[0]
    assert "| GD-1.1 | P0 |" in text  # the failed criterion became a P0 defect


def test_a_passing_scenario_shows_its_measured_figures_and_time_to_detect() -> None:
    scenario = _scenario("pass")
    scenario["criteria"] = [
        {"text": "recovers", "measure": "outage.recovery_s", "threshold": "≤ 30",
         "measured": 0.7, "verdict": "pass", "severity": "P1", "why": ""},
        {"text": "p95", "measure": "outage.during.p95_s", "threshold": "≤ 2.5",
         "measured": None, "verdict": "unknown", "severity": "P1", "why": "not measured"},
    ]  # fmt: skip
    scenario["alerts"] = [{"name": "ApiErrorRateHigh", "status": "firing", "expected": True,
                           "ttd_s": 12.1}]  # fmt: skip
    line = key_figures(scenario)
    assert line == "outage.recovery_s 0.7, ApiErrorRateHigh TTD 12.1 s"
