"""The whole fast drill on the embedded stack: every mandatory scenario passes on the
reference service, and the journal, history and report say so with the evidence."""

from __future__ import annotations

from pathlib import Path

import pytest

from gameday.history import read_history
from tests.gameday.drill.support import DrillRun, run_drill

pytestmark = [pytest.mark.slow, pytest.mark.drill]


@pytest.fixture(scope="module")
def drill(tmp_path_factory: pytest.TempPathFactory) -> DrillRun:
    return run_drill(tmp_path_factory.mktemp("drill") / "report", "--seed", "5")


def test_all_eight_scenarios_pass_on_the_reference_service(drill: DrillRun) -> None:
    failed = {
        s["id"]: [c for c in s["criteria"] if c["verdict"] != "pass"] + s["errors"]
        for s in drill.journal["scenarios"] if s["verdict"] != "pass"
    }  # fmt: skip
    assert not failed, failed
    assert drill.code == 0, drill.output[-2000:]
    assert [s["id"] for s in drill.journal["scenarios"]] == list(range(1, 9))
    assert drill.journal["status"] == "complete"
    assert "ALL SCENARIOS PASS" in drill.output


def test_preflight_checks_pass(drill: DrillRun) -> None:
    assert {c["check"]: c["verdict"] for c in drill.journal["preflight"]} == {
        "target healthy": "pass", "drill data seeded": "pass",
        "webhook signatures verified": "pass", "feature flags": "pass",
        "database snapshot": "pass", "stop condition armed": "pass",
        "monitoring reachable": "pass",
    }  # fmt: skip


def test_every_checker_ran_and_passed(drill: DrillRun) -> None:
    seen = {c["name"]: c["verdict"] for s in drill.journal["scenarios"] for c in s["checks"]}
    assert set(seen) == {"no_duplicate_charge", "no_double_booking", "convergence",
                         "single_application", "no_lost_ack", "deterministic_retries"}  # fmt: skip
    assert set(seen.values()) == {"pass"}


def test_expected_alerts_paged_with_a_time_to_detect(drill: DrillRun) -> None:
    for sid, name in ((4, "ApiErrorRateHigh"), (5, "RedisUnavailable")):
        fired = [a for a in drill.scenario(sid)["alerts"]
                 if a["name"] == name and a["status"] == "firing"]  # fmt: skip
        assert fired, drill.scenario(sid)["alerts"]
        assert 0 < fired[0]["ttd_s"] < 30


def test_faults_were_injected_healed_and_recovered_from(drill: DrillRun) -> None:
    timeline = drill.journal["timeline"]
    injected = [e for e in timeline if e["kind"] == "inject"]
    healed = [e for e in timeline if e["kind"] == "heal"]
    assert len(injected) == len(healed) == 6  # 4, 5, 6, 7 and two in 8
    for sid in (4, 5, 7, 8):
        for fault in drill.scenario(sid)["faults"]:
            assert fault["recovery_s"] is not None, fault
            assert fault["recovery_s"] < 30, fault
            assert fault["restarts"] == 0


def test_the_history_holds_every_request_with_its_outcome(drill: DrillRun) -> None:
    ops = list(read_history(drill.out / "history.jsonl"))
    assert len(ops) == drill.journal["history"]["requests"] > 500
    assert {op.type for op in ops} <= {"ok", "fail", "info"}
    assert {"hold", "pay", "webhook", "login", "availability"} <= {op.f for op in ops}
    storm = [
        op
        for op in ops
        if op.scenario == "1" and op.f == "pay" and op.process.startswith("stormsame")
    ]
    assert len(storm) == 50
    assert len({op.idempotency_key for op in storm}) == 1


def test_the_report_lists_every_scenario(drill: DrillRun) -> None:
    report = (drill.out / "report.md").read_text()
    for s in drill.journal["scenarios"]:
        assert f"## {s['id']}. {s['title']} — PASS" in report
    assert "| target healthy | pass |" in report


def test_no_secret_reaches_the_journal_or_report(drill: DrillRun) -> None:
    text = (drill.out / "journal.json").read_text() + (drill.out / "report.md").read_text()
    for marker in ("sk_test_gameday_stack", "whsec_", "Bearer ", "password"):
        assert marker not in text, marker
    assert Path(drill.out / "snapshot.sql").stat().st_mode & 0o077 == 0


def test_the_gate_says_go_with_every_row_measured(drill: DrillRun) -> None:
    gate = drill.journal["gate"]
    assert gate["decision"] == "GO", gate["reasons"]
    rows = {r["id"]: r for r in gate["rows"]}
    assert len(rows) == 10
    assert not [r for r in rows.values() if r["verdict"] in ("fail", "unknown")], rows
    assert rows["webhook_success"]["value"] >= 0.99
    assert rows["api_5xx_steady"]["value"] < 0.01
    assert drill.journal["steady"]["excluded_windows"]  # the faults' windows are left out
    assert "DECISION: GO" in drill.output


def test_the_html_report_renders_in_chromium(drill: DrillRun) -> None:
    from tests.support_browser import render  # noqa: PLC0415

    shot = drill.out / "report.png"
    page = render(drill.out / "index.html", shot)
    assert page.console_errors == []
    assert page.failed_requests == []  # self-contained: nothing fetched from anywhere
    assert page.decision == "GO"
    assert page.scenario_sections == 8
    assert page.svg_charts == 3 * 8
    for s in drill.journal["scenarios"]:
        assert f"{s['id']}. {s['title']}" in page.text
    assert shot.stat().st_size > 20_000


def test_junit_has_a_case_per_scenario_and_gate_row(drill: DrillRun) -> None:
    import xml.etree.ElementTree as ET  # noqa: PLC0415

    suites = ET.parse(drill.out / "junit.xml").getroot()  # noqa: S314 - our own file
    assert (suites.get("tests"), suites.get("failures")) == ("19", "0")
