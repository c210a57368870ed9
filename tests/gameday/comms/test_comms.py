"""Communications and the review from synthetic evidence: every figure comes from the
journal or the audit trail, anything unmeasured is a visible [UNKNOWN: …], the status page
follows the checks, and the review's times and due dates are derived, not typed."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from gameday.cli import app
from gameday.comms.facts import FactsError, gather
from gameday.comms.render import PhaseRefused, render, review
from gameday.gate import parse_journal
from tests.gameday.gate.test_gate import healthy

runner = CliRunner()
T0 = dt.datetime(2026, 11, 20, 14, 0, tzinfo=dt.UTC)


def _at(minutes: float) -> str:
    return (T0 + dt.timedelta(minutes=minutes)).isoformat()


def _audit(tmp_path: Path, *, verified: bool = True) -> Path:
    records: list[dict[str, Any]] = [
        {
            "at": _at(5),
            "who": "dana",
            "mode": "diagnose",
            "runbook": "payment-anomaly",
            "incident": "INC-7",
            "plan": "abc",
            "invariants": {"duplicate_charges": 2, "status_divergences": 0},
            "outcome": "found",
        },
        {
            "at": _at(9),
            "who": "dana",
            "mode": "apply",
            "runbook": "payment-anomaly",
            "incident": "INC-7",
            "plan": "abc",
            "outcome": "verified" if verified else "incomplete",
            "changes": [
                {
                    "action": "refund_intent",
                    "subject": "pi_A2",
                    "amount_cents": 12500,
                    "currency": "usd",
                    "ok": True,
                    "detail": {"booking_id": 41},
                },
                {
                    "action": "refund_intent",
                    "subject": "pi_B2",
                    "amount_cents": 9000,
                    "currency": "usd",
                    "ok": verified,
                    "detail": {"booking_id": 42},
                },
            ],
            "invariants_before": {"duplicate_charges": 2, "status_divergences": 0},
            "invariants_after": {
                "duplicate_charges": 0 if verified else 1,
                "status_divergences": 0,
            },
        },
        {
            "at": _at(1),
            "who": "sam",
            "mode": "diagnose",
            "runbook": "double-booking",
            "incident": "INC-OTHER",
            "invariants": {"overlapping_bookings": 1},
            "outcome": "found",
        },
    ]
    path = tmp_path / "audit.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_the_internal_notice_carries_measured_figures_and_marks_the_rest(tmp_path: Path) -> None:
    facts = gather(None, _audit(tmp_path), "INC-7")
    text = render("internal", facts, T0)
    assert "[P0] Production incident INC-7 - duplicate charges on 2 booking(s)" in text
    assert "Refunds issued: 2 totalling 215.00 USD" in text
    assert "Affected bookings: 2 (41, 42)" in text
    assert "Impact started: 2026-11-20 14:05:00 UTC" in text
    assert "Mitigated: 2026-11-20 14:09:00 UTC" in text
    assert "Resolved: 2026-11-20 14:09:00 UTC" in text
    assert "[UNKNOWN: incident_commander]" in text
    assert "[UNKNOWN: failed_events]" in text  # webhook figures were never measured
    assert "INC-OTHER" not in text
    assert "14:01" not in text


def test_resolved_is_refused_while_an_invariant_fails(tmp_path: Path) -> None:
    facts = gather(None, _audit(tmp_path, verified=False), "INC-7")
    with pytest.raises(PhaseRefused, match="duplicate_charges 1"):
        render("status-resolved", facts, T0)
    assert "A fix was applied at 2026-11-20 14:09:00 UTC" in render("status-monitoring", facts)
    green = gather(None, _audit(tmp_path), "INC-7")  # the same incident, verified this time
    assert "fully resolved as of 2026-11-20 14:09:00 UTC" in render("status-resolved", green)


def test_monitoring_needs_a_mitigation_on_record(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_text(
        json.dumps(
            {
                "at": _at(1),
                "mode": "diagnose",
                "runbook": "double-booking",
                "incident": "INC-9",
                "invariants": {"overlapping_bookings": 3},
            }
        )
        + "\n"
    )
    facts = gather(None, path, "INC-9")
    with pytest.raises(PhaseRefused, match="no mitigation"):
        render("status-monitoring", facts)
    assert "Investigating - We are investigating reports of issues with bookings" in render(
        "status-investigating", facts
    )


def test_one_customer_message_per_refund_with_its_amount_and_reference(tmp_path: Path) -> None:
    facts = gather(None, _audit(tmp_path), "INC-7")
    text = render("customer-payment-recovery", facts)
    assert text.count("Subject: Your booking") == 2
    assert "Amount refunded: 125.00 USD" in text
    assert "Refund reference: pi_B2" in text
    assert "Dear [UNKNOWN: customer_name]" in text  # names are never in the evidence
    with pytest.raises(PhaseRefused, match="no affected customer"):
        render("customer-double-booking", facts)


def test_the_review_derives_times_and_due_dates_from_the_events(tmp_path: Path) -> None:
    data = healthy()
    data["started_at"] = T0.isoformat()
    data["finished_at"] = _at(20)
    s = data["scenarios"][3]
    s["verdict"] = "fail"
    s["criteria"][0].update(verdict="fail", severity="P1", text="Recovers by itself")
    s["rollback"] = [{"action": "heal", "ok": True}]
    data["timeline"] = [
        {"t": 60.0, "kind": "inject", "what": "down", "scenario": 4},
        {"t": 300.0, "kind": "heal", "what": "down", "scenario": 4},
    ]
    data["alerts"] = [
        {"name": "ApiErrorRateHigh", "status": "firing", "received_at": _at(2.5), "scenario": 4}
    ]
    journal = tmp_path / "journal.json"
    journal.write_text(json.dumps(data))
    facts = gather(journal, None, None)
    text = review(facts, parse_journal(data), dt.date(2026, 11, 23))
    assert "Impact started (first fault or finding): 2026-11-20 14:01:00 UTC" in text
    assert "Detected (first alert or diagnosis): 2026-11-20 14:02:30 UTC" in text
    assert "Time to detect: 1 min 30 s" in text
    assert "Resolved (invariants back to zero): [UNKNOWN: resolved_at]" in text
    assert "[TO FILL: root cause]" in text
    assert "| P1 |" in text
    assert "Recovers by itself" in text
    assert "| 2026-11-30 |" in text  # P1: seven days


def test_a_p0_action_item_is_due_in_two_days(tmp_path: Path) -> None:
    facts = gather(None, _audit(tmp_path, verified=False), "INC-7")
    text = review(facts, None, dt.date(2026, 11, 23))
    assert (
        "| P0 | — | invariant duplicate_charges still fails (1) | [TO FILL: owner] | 2026-11-25 |"
        in text
    )
    assert "Mitigated (first heal or apply): 2026-11-20 14:09:00 UTC" in text


def test_a_bad_audit_line_is_one_line_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_text('{"at": "x", "runbook": "r"}\nnot json\n')
    with pytest.raises(FactsError, match=r"audit\.jsonl:2: not a JSON line"):
        gather(None, path, None)


def test_the_commands(tmp_path: Path) -> None:
    audit = _audit(tmp_path)
    done = runner.invoke(
        app, ["comms", "status-identified", "--from", str(audit), "--incident", "INC-7"]
    )
    assert done.exit_code == 0, done.output
    assert "duplicate charges on 2 booking(s)" in done.output
    bad = runner.invoke(app, ["comms", "tweet", "--from", str(audit)])
    assert bad.exit_code == 2
    refused = runner.invoke(
        app,
        [
            "comms",
            "status-resolved",
            "--from",
            str(_audit(tmp_path, verified=False)),
            "--incident",
            "INC-7",
        ],
    )
    assert refused.exit_code == 5
    out = tmp_path / "review.md"
    written = runner.invoke(
        app,
        [
            "review",
            "--from",
            str(audit),
            "--incident",
            "INC-7",
            "--out",
            str(out),
            "--today",
            "2026-11-23",
        ],
    )
    assert written.exit_code == 0, written.output
    assert out.read_text().startswith("# Post-incident review: INC-7")
