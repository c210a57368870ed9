"""The report from synthetic journals: the three files, the JUnit structure CI systems read,
defects with severity and priority, the re-test plan and the CLI's exit codes. The report of
a real drill (and its browser rendering) is tested beside the drill in tests/gameday/drill."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from gameday.cli import app
from gameday.gate import decide, parse_journal
from gameday.report import write_reports
from gameday.report.charts import line_chart
from gameday.report.defects import defects, priority
from gameday.report.plan import PlanError, parse_areas, retest_plan
from tests.gameday.gate.test_gate import TODAY, healthy

runner = CliRunner()


def said(done: Any) -> str:
    """The command's output with Rich's line wrapping undone."""
    return " ".join(done.output.split())


def _broken() -> dict[str, Any]:
    data = healthy()
    s = data["scenarios"][0]
    s["verdict"] = "fail"
    s["criteria"][0].update(verdict="fail", measured=2, text="Same key: one charge <b>")
    s["checks"][0].update(
        verdict="fail",
        figures={"bookings_charged_twice": 1},
        evidence=[{"booking_id": 7, "intent_ids": ["pi_1", "pi_2"]}],
    )
    s["rollback"] = [
        {"action": "heal", "ok": True},
        {"action": "reconcile", "ok": True, "detail": "refunded 1"},
    ]
    data["series"] = {"bucket_s": 1, "points": [[t, 10.0, 0.0, 50.0] for t in range(0, 90)]}
    data["timeline"] = [
        {"t": 42.0, "kind": "alert", "what": "ApiErrorRateHigh", "status": "firing", "scenario": 4}
    ]
    return data


def _write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "journal.json"
    path.write_text(json.dumps(data))
    return path


def test_the_three_files_carry_the_decision_the_defects_and_the_plan(tmp_path: Path) -> None:
    data = _broken()
    typed = parse_journal(data)
    result = decide(typed, today=TODAY)
    write_reports(typed, data, result, tmp_path)
    html = (tmp_path / "index.html").read_text()
    assert 'id="decision"' in html
    assert "NO-GO" in html
    assert "&lt;b&gt;" in html  # text from the journal is escaped, never markup
    assert html.count("<svg") == 3 * 8  # three charts per scenario
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    md = (tmp_path / "report.md").read_text()
    assert md.startswith("# Game Day drill report — NO-GO")
    assert "| GD-1.1 | P0 |" in md
    assert "Rerun: `gameday drill -s 1 -s 2 -s 3 -s 4`" in md  # payment area, plus adjacent 2
    suites = ET.parse(tmp_path / "junit.xml").getroot()  # noqa: S314 - our own file
    assert suites.get("tests") == str(8 + 10 + 1)
    names = {c.get("name"): c for c in suites.iter("testcase")}
    assert names["1. scenario 1"].find("failure") is not None
    assert names["2. scenario 2"].find("failure") is None
    assert names["Duplicate charges"].find("failure") is not None
    assert names["Go/No-Go decision"].find("failure").get("message") == "NO-GO"  # type: ignore[union-attr]


def test_a_failed_criterion_becomes_a_ranked_defect() -> None:
    data = _broken()
    data["scenarios"][5]["verdict"] = "fail"
    data["scenarios"][5]["criteria"][0].update(verdict="fail", severity="P2")
    found = defects(parse_journal(data))
    assert [(d.id, d.severity) for d in found] == [("GD-1.1", "P0"), ("GD-6.1", "P2")]
    assert found[0].priority == priority("P0", 5, 3, 3) == 5 * 3 + 5 * 2 + 3 * 2 - 3
    assert found[0].rollback == "heal: done; reconcile: done"


@pytest.mark.parametrize(
    ("changed", "scenarios"),
    [
        ("payment", [1, 2, 3, 4]),
        ("db", [1, 2, 3, 4]),
        ("cache,auth", [5, 6, 7, 8]),
        ("network, payment", [1, 2, 3, 4, 5, 6, 7, 8]),
    ],
)
def test_the_retest_plan_follows_part_7_4(changed: str, scenarios: list[int]) -> None:
    plan = retest_plan(parse_areas(changed))
    assert plan.scenarios == scenarios
    assert plan.observability


def test_a_p0_defect_adds_its_scenario_and_an_adjacent_one() -> None:
    data = healthy()
    data["scenarios"][6]["verdict"] = "fail"
    data["scenarios"][6]["criteria"][0]["verdict"] = "fail"  # scenario 7, P0
    plan = retest_plan(parse_areas("payment"), parse_journal(data))
    assert plan.scenarios == [1, 2, 3, 4, 7, 8]


def test_an_unknown_area_is_refused_with_the_choices() -> None:
    with pytest.raises(PlanError, match="choose from payment, db, cache, auth, network"):
        parse_areas("payments")


def test_a_chart_shades_faults_and_marks_alerts() -> None:
    svg = line_chart(
        "p95",
        [(0, 1.0), (5, 2.0), (9, None)],
        t0=0,
        t1=10,
        shaded=[(2, 4)],
        marks=[(3, "ApiErrorRateHigh")],
    )
    assert svg.count('class="fault"') == 1
    assert svg.count('class="alert"') == 1
    assert "ApiErrorRateHigh" in svg
    assert "no data" in line_chart("empty", [], t0=0, t1=10)


# -- the commands ----------------------------------------------------------------------------


def test_gate_exit_codes_follow_the_decision(tmp_path: Path) -> None:
    assert runner.invoke(app, ["gate", str(_write(tmp_path, healthy()))]).exit_code == 0
    broken = runner.invoke(app, ["gate", str(_write(tmp_path, _broken())), "--json"])
    assert broken.exit_code == 1
    assert json.loads(broken.output)["decision"] == "NO-GO"
    aborted = healthy() | {"status": "aborted", "abort_reason": "interrupted"}
    assert runner.invoke(app, ["gate", str(_write(tmp_path, aborted))]).exit_code == 3


def test_gate_with_an_accepted_medium_risk_exits_4(tmp_path: Path) -> None:
    data = healthy()
    data["webhooks"]["success_rate"] = 0.985
    accepted = tmp_path / "accepted.yaml"
    accepted.write_text(
        "accepted:\n  - id: row.webhook_success\n    mitigation: replay daily\n"
        "    owner: sam\n    due: 2099-01-01\n    rollback_ready: true\n"
    )
    done = runner.invoke(
        app, ["gate", str(_write(tmp_path, data)), "--accepted-risks", str(accepted)]
    )
    assert done.exit_code == 4, done.output
    assert "CONDITIONAL GO" in said(done)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"journal_version": 1, "status": 3}', "$.status"),
        ("[]", "not a gameday journal"),
    ],
)
def test_a_bad_journal_is_a_one_line_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "journal.json"
    path.write_text(content)
    done = runner.invoke(app, ["gate", str(path)])
    assert done.exit_code == 2
    assert message in said(done)
    assert "Traceback" not in done.output


def test_a_bad_accepted_risks_file_is_exit_2_naming_the_field(tmp_path: Path) -> None:
    accepted = tmp_path / "a.yaml"
    accepted.write_text(
        "accepted:\n  - {id: x, mitigation: fix it, owner: a, due: soon, rollback_ready: true}\n"
    )
    done = runner.invoke(
        app, ["gate", str(_write(tmp_path, healthy())), "--accepted-risks", str(accepted)]
    )
    assert done.exit_code == 2
    assert "$.accepted[0].due" in said(done)


def test_report_writes_beside_the_journal(tmp_path: Path) -> None:
    done = runner.invoke(
        app,
        ["report", str(tmp_path), "--out", str(tmp_path / "r")]
        if _write(tmp_path, _broken())
        else [],
    )
    assert done.exit_code == 1, done.output
    assert {p.name for p in (tmp_path / "r").iterdir()} == {"index.html", "report.md", "junit.xml"}


def test_plan_prints_the_scenarios_and_refuses_unknown_areas() -> None:
    done = runner.invoke(app, ["plan", "--changed", "cache"])
    assert done.exit_code == 0
    assert "gameday drill -s 5 -s 6 -s 7 -s 8" in said(done)
    bad = runner.invoke(app, ["plan", "--changed", "kafka"])
    assert bad.exit_code == 2
    assert "choose from" in said(bad)
