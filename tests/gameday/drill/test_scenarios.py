"""The scenario files: the eight of the playbook, each complete, and bad files refused."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from gameday.drill.checks import CHECKS, invariant_criteria
from gameday.drill.criteria import judge
from gameday.drill.probes import PROBES
from gameday.drill.scenario import (
    Criterion,
    ScenarioError,
    check_names,
    load_scenarios,
    parse_scenario,
)
from gameday.faults import KINDS
from gameday.verdict import Verdict


def test_the_eight_mandatory_scenarios_load_in_order() -> None:
    scenarios = load_scenarios()
    assert [s.id for s in scenarios] == list(range(1, 9))
    assert all(s.mandatory and s.criteria for s in scenarios)
    kinds = {s.kind for s in scenarios}
    assert {"payment", "booking", "webhook", "db", "cache", "auth", "network"} <= kinds


def test_every_outage_scenario_measures_recovery_and_restarts() -> None:
    for s in load_scenarios():
        faults = [step for step in s.steps if step.fault]
        for step in faults:
            assert step.duration is not None
            assert step.duration.fast < step.duration.real


def test_the_p0_invariants_are_criteria_where_the_playbook_demands_them() -> None:
    by_id = {s.id: s for s in load_scenarios()}
    assert "checks.no_duplicate_charge" in {c.measure for c in by_id[1].criteria}
    assert "checks.no_double_booking" in {c.measure for c in by_id[2].criteria}
    assert "checks.single_application" in {c.measure for c in by_id[3].criteria}
    assert by_id[4].expect_alerts
    assert by_id[5].expect_alerts


_GOOD = """
id: 9
slug: x
title: X
playbook: test
kind: payment
steps:
  - probe: checkout
checks: []
criteria:
  - {text: t, measure: checkout.ok, min: 1}
"""


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("kind: payment", "kind: payment\ncolour: red"), "unknown field `colour`"),
        (("id: 9", "id: nine"), "id must be an integer"),
        (("  - probe: checkout", "  - probe: checkout\n    inject: down"), "exactly one of"),
        (("min: 1}", "}"), "needs `max`, `min` or `expect`"),
        (("min: 1}", "min: 1, severity: P9}"), "severity must be one of"),
        (("title: X\n", ""), "`title` is required"),
        (("id: 9", "id: [9"), "not YAML"),
    ],
)
def test_a_bad_scenario_file_says_where(change: tuple[str, str], message: str) -> None:
    text = _GOOD.replace(*change)
    with pytest.raises(ScenarioError, match=message) as caught:
        parse_scenario(text, "bad.yaml")
    assert "bad.yaml" in str(caught.value)


def test_duplicate_ids_in_a_directory_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(_GOOD)
    (tmp_path / "b.yaml").write_text(_GOOD)
    with pytest.raises(ScenarioError, match="used twice"):
        load_scenarios(tmp_path)


def test_criteria_pass_fail_and_unknown() -> None:
    at_most_one = Criterion("one charge", "x", max=1)
    assert judge(at_most_one, {"x": 1}).verdict is Verdict.PASS
    assert judge(at_most_one, {"x": 2}).verdict is Verdict.FAIL
    assert judge(at_most_one, {}).verdict is Verdict.UNKNOWN
    assert judge(at_most_one, {"x": math.nan}).verdict is Verdict.UNKNOWN
    passed = Criterion("checker", "checks.c", expect="pass")
    assert judge(passed, {"checks.c": "pass"}).verdict is Verdict.PASS
    assert judge(passed, {"checks.c": "fail"}).verdict is Verdict.FAIL
    assert judge(passed, {"checks.c": "unknown"}).verdict is Verdict.UNKNOWN


@pytest.mark.parametrize(
    ("measure", "message"),
    [("chekout.ok", "no step is labelled `chekout`"), ("checks.nope", "`nope` is not in `checks`")],
)
def test_a_criterion_reading_nothing_is_refused(measure: str, message: str) -> None:
    scenario = parse_scenario(_GOOD.replace("checkout.ok", measure), "typo.yaml")
    with pytest.raises(ScenarioError, match=message):
        check_names([scenario], PROBES, CHECKS, KINDS)


def test_the_built_in_scenarios_name_only_what_exists() -> None:
    check_names(load_scenarios(), PROBES, CHECKS, KINDS)


def test_every_checker_a_scenario_runs_counts_towards_its_verdict() -> None:
    for s in load_scenarios():
        named = {c.measure for c in (*s.criteria, *invariant_criteria(s))}
        assert {f"checks.{name}" for name in s.checks} <= named, s.slug
    empty = parse_scenario(_GOOD.replace("checks: []", "checks: [no_double_booking]"), "x.yaml")
    assert [c.severity for c in invariant_criteria(empty)] == ["P0"]
