"""The negative control: against the service with every safeguard removed, the drill fails
scenarios 1, 2 and 3 with the exact P0 evidence, and scenario 4 on the 500s the unsafe
variant answers while the database is away — the checks can fail."""

from __future__ import annotations

import pytest

from tests.gameday.drill.support import DrillRun, run_drill

pytestmark = [pytest.mark.slow, pytest.mark.drill]


@pytest.fixture(scope="module")
def drill(tmp_path_factory: pytest.TempPathFactory) -> DrillRun:
    out = tmp_path_factory.mktemp("unsafe") / "report"
    return run_drill(out, "--unsafe-service", "--seed", "5", "-s", "1", "-s", "2", "-s", "3",
                     "-s", "4")  # fmt: skip


def test_the_drill_fails_and_says_so(drill: DrillRun) -> None:
    assert drill.code == 1, drill.output[-2000:]
    assert [s["verdict"] for s in drill.journal["scenarios"]] == ["fail"] * 4
    assert "DRILL RESULT: FAIL" in drill.output


def test_duplicate_charges_are_caught_with_the_intents(drill: DrillRun) -> None:
    check = drill.check(1, "no_duplicate_charge")
    assert check["verdict"] == "fail"
    assert check["severity"] == "P0"
    doubled = [e for e in check["evidence"] if e["kind"] == "charged_twice_at_provider"]
    assert doubled, check["evidence"]
    assert all(len(set(e["intent_ids"])) > 1 for e in doubled)
    criteria = {c["text"]: c for c in drill.scenario(1)["criteria"]}
    storm = criteria["Same key: at most one successful charge for the order"]
    assert storm["verdict"] == "fail"
    assert storm["measured"] > 1


def test_double_bookings_are_caught_with_the_rows(drill: DrillRun) -> None:
    check = drill.check(2, "no_double_booking")
    assert check["verdict"] == "fail"
    assert check["evidence"], check
    race = {c["measure"]: c for c in drill.scenario(2)["criteria"]}["race.winners"]
    assert race["verdict"] == "fail"
    assert race["measured"] > 1


def test_double_applied_events_are_caught(drill: DrillRun) -> None:
    check = drill.check(3, "single_application")
    assert check["verdict"] == "fail"
    assert check["evidence"], check


def test_a_database_outage_answered_with_500s_is_caught(drill: DrillRun) -> None:
    failed = {c["measure"]: c for c in drill.scenario(4)["criteria"] if c["verdict"] == "fail"}
    assert failed["outage.during.status_500"]["measured"] > 0, drill.scenario(4)["criteria"]


def test_a_failed_scenario_is_rolled_back(drill: DrillRun) -> None:
    for s in drill.journal["scenarios"]:
        actions = {r["action"]: r["ok"] for r in s["rollback"]}
        assert actions["heal"] is True
        assert actions["reconcile"] is True


def test_the_gate_is_no_go_with_the_p0_blockers(drill: DrillRun) -> None:
    gate = drill.journal["gate"]
    assert gate["decision"] == "NO-GO"
    blockers = {b["id"] for b in gate["blockers"]}
    assert {
        "row.duplicate_charges",
        "row.duplicate_bookings",
        "row.mandatory_pass_rate",
    } <= blockers
    rows = {r["id"]: r for r in gate["rows"]}
    assert rows["duplicate_charges"]["value"] > 0
    assert rows["duplicate_bookings"]["value"] > 0
    assert "DECISION: NO-GO" in drill.output
    report = (drill.out / "report.md").read_text()
    assert "| P0 |" in report  # the failed criteria became P0 defects


def test_the_review_of_the_drill_states_the_p0_impact(drill: DrillRun) -> None:
    from typer.testing import CliRunner  # noqa: PLC0415

    from gameday.cli import app  # noqa: PLC0415

    done = CliRunner().invoke(app, ["review", "--from", str(drill.out), "--today", "2026-11-23"])
    assert done.exit_code == 0, done.output
    text = " ".join(done.output.split())
    assert "duplicate charges on" in text
    assert "Severity P0" in text
    assert "| P0 |" in text
    assert "2026-11-25" in text
    refused = CliRunner().invoke(app, ["comms", "status-resolved", "--from", str(drill.out)])
    assert refused.exit_code == 5  # duplicate charges still stand
