"""The gate over synthetic journals: every Part 6.1 row, every 6.3 blocker, each decision
band, and the accepted-risks rules. A healthy journal is GO; each case breaks one thing."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from gameday.gate import Decision, InputError, decide, load_accepted, parse_journal
from gameday.gate.journal import JournalError
from gameday.gate.risk import Acceptance, load_risk_config

TODAY = dt.date(2026, 11, 23)
KINDS = {
    1: "payment",
    2: "booking",
    3: "webhook",
    4: "db",
    5: "cache",
    6: "auth",
    7: "db",
    8: "network",
}


def _scenario(sid: int) -> dict[str, Any]:
    kind = KINDS[sid]
    s: dict[str, Any] = {
        "id": sid,
        "title": f"scenario {sid}",
        "kind": kind,
        "mandatory": True,
        "verdict": "pass",
        "started_t": 10.0 * sid,
        "ended_t": 10.0 * sid + 8,
        "criteria": [
            {
                "text": f"criterion of {sid}",
                "measure": "x.y",
                "threshold": "≤ 1",
                "measured": 0,
                "verdict": "pass",
                "severity": "P0",
            }
        ],
        "checks": [
            {
                "name": "no_duplicate_charge",
                "verdict": "pass",
                "figures": {"bookings_charged_twice": 0},
            },
            {
                "name": "no_double_booking",
                "verdict": "pass",
                "figures": {"duplicate_confirmed_slots": 0, "confirmed_overlaps": 0},
            },
        ],
        "faults": [],
        "alerts": [],
        "rollback": [],
    }
    if kind in ("db", "cache"):
        s["faults"] = [
            {
                "label": "outage",
                "kind": "down",
                "target": "db" if kind == "db" else "redis",
                "injected_t": 10.0 * sid + 1,
                "healed_t": 10.0 * sid + 5,
                "recovery_s": 0.5,
                "recovery_probe": "checkout",
                "restarts": 0,
            }
        ]
    if sid == 4:
        s["criteria"].append(
            {
                "text": "alert ApiErrorRateHigh pages",
                "measure": "alerts.ApiErrorRateHigh",
                "threshold": "= fired",
                "measured": "fired",
                "verdict": "pass",
                "severity": "P0",
            }
        )
    return s


def healthy() -> dict[str, Any]:
    return {
        "journal_version": 1,
        "status": "complete",
        "scenarios": [_scenario(i) for i in range(1, 9)],
        "steady": {
            "requests": 1000,
            "status_5xx": 0,
            "no_answer": 0,
            "error_rate": 0.0,
            "critical_p95_s": {"hold": 0.2, "pay": 0.4},
        },
        "webhooks": {
            "events": 200,
            "delivered": 200,
            "pending": 0,
            "success_rate": 1.0,
            "window_s": 30,
        },
        "db_pool": {"steady": 0.2, "peak": 0.6},
    }


def gate(data: dict[str, Any], accepted: list[Acceptance] | None = None) -> Any:
    return decide(parse_journal(data), acceptances=accepted, today=TODAY)


def row(result: Any, rid: str) -> Any:
    return next(r for r in result.rows if r.id == rid)


def test_a_healthy_drill_is_go_with_every_row_passing() -> None:
    result = gate(healthy())
    assert result.decision is Decision.GO, result.reasons
    assert [r.verdict for r in result.rows] == ["pass"] * 10
    assert result.blockers == []
    assert result.risks == []
    assert result.exit_code == 0


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(j: dict[str, Any]) -> None:
        node: Any = j
        *parts, last = path.split(".")
        for part in parts:
            node = node[int(part)] if part.isdigit() else node[part]
        node[int(last) if last.isdigit() else last] = value

    return apply


def _fail_scenario(sid: int) -> Callable[[dict[str, Any]], None]:
    def apply(j: dict[str, Any]) -> None:
        s = j["scenarios"][sid - 1]
        s["verdict"] = "fail"
        s["criteria"][0]["verdict"] = "fail"
        s["rollback"] = [{"action": "heal", "ok": True}, {"action": "reconcile", "ok": True}]

    return apply


def _drop_scenario(sid: int) -> Callable[[dict[str, Any]], None]:
    return lambda j: j.update(scenarios=[s for s in j["scenarios"] if s["id"] != sid])


# (case, change, row id, row verdict, blocker id expected or None, decision): a weak row
# scored low (impact x likelihood x gap <= 15) is GO with the risk listed; medium is NO-GO
# until accepted.
ROW_CASES = [
    (
        "duplicate charge",
        _set("scenarios.0.checks.0.figures.bookings_charged_twice", 2),
        "duplicate_charges",
        "fail",
        "row.duplicate_charges",
        "NO_GO",
    ),
    (
        "double booking",
        _set("scenarios.1.checks.1.figures.duplicate_confirmed_slots", 1),
        "duplicate_bookings",
        "fail",
        "row.duplicate_bookings",
        "NO_GO",
    ),
    (
        "mandatory scenario failed",
        _fail_scenario(6),
        "mandatory_pass_rate",
        "fail",
        "row.mandatory_pass_rate",
        "NO_GO",
    ),
    (
        "mandatory scenario not run",
        _drop_scenario(8),
        "mandatory_pass_rate",
        "fail",
        "row.mandatory_pass_rate",
        "NO_GO",
    ),
    (
        "5xx between 1 and 2 %",
        _set("steady.error_rate", 0.015),
        "api_5xx_steady",
        "warn",
        None,
        "GO",
    ),
    (
        "5xx sustained at 2 %",
        _set("steady.error_rate", 0.02),
        "api_5xx_steady",
        "fail",
        "row.api_5xx_steady",
        "NO_GO",
    ),
    (
        "p95 between 1.5 and 2.5 s",
        _set("steady.critical_p95_s.pay", 1.8),
        "p95_critical",
        "warn",
        None,
        "GO",
    ),
    (
        "p95 past 2.5 s",
        _set("steady.critical_p95_s.hold", 2.6),
        "p95_critical",
        "fail",
        "row.p95_critical",
        "NO_GO",
    ),
    (
        "webhooks 98.5 %",
        _set("webhooks.success_rate", 0.985),
        "webhook_success",
        "warn",
        None,
        "NO_GO",
    ),
    (
        "webhooks under 98 %",
        _set("webhooks.success_rate", 0.97),
        "webhook_success",
        "fail",
        "row.webhook_success",
        "NO_GO",
    ),
    ("pool peak 95 %", _set("db_pool.peak", 0.95), "db_pool", "warn", None, "GO"),
    ("pool steady 85 %", _set("db_pool.steady", 0.85), "db_pool", "warn", None, "GO"),
    ("pool steady 92 %", _set("db_pool.steady", 0.92), "db_pool", "fail", "row.db_pool", "NO_GO"),
    (
        "redis worker restarted",
        _set("scenarios.4.faults.0.restarts", 1),
        "redis_survivability",
        "fail",
        "row.redis_survivability",
        "NO_GO",
    ),
    (
        "redis criterion failed",
        _fail_scenario(5),
        "redis_survivability",
        "fail",
        "row.redis_survivability",
        "NO_GO",
    ),
    (
        "MTTR 25 min",
        _set("scenarios.3.faults.0.recovery_s", 25 * 60.0),
        "mttr",
        "warn",
        None,
        "NO_GO",
    ),
    (
        "MTTR 31 min",
        _set("scenarios.3.faults.0.recovery_s", 31 * 60.0),
        "mttr",
        "fail",
        "row.mttr",
        "NO_GO",
    ),
    (
        "never recovered",
        _set("scenarios.3.faults.0.recovery_s", None),
        "mttr",
        "fail",
        "recovery.4",
        "NO_GO",
    ),
    ("no steady figures", lambda j: j.pop("steady"), "api_5xx_steady", "unknown", None, "NO_GO"),
    (
        "provider unreadable",
        _set("webhooks", {"events": None, "error": "timeout"}),
        "webhook_success",
        "unknown",
        None,
        "NO_GO",
    ),
]


@pytest.mark.parametrize(
    ("change", "rid", "verdict", "blocker", "decision"),
    [c[1:] for c in ROW_CASES],
    ids=[c[0] for c in ROW_CASES],
)
def test_each_row_catches_its_violation(
    change: Callable[[dict[str, Any]], None],
    rid: str,
    verdict: str,
    blocker: str | None,
    decision: str,
) -> None:
    data = healthy()
    change(data)
    result = gate(data)
    assert row(result, rid).verdict == verdict
    ids = {b.id for b in result.blockers}
    if blocker:
        assert blocker in ids
    assert result.decision is Decision[decision], result.reasons
    assert any(r.id == f"row.{rid}" for r in result.risks)  # every weak area is scored


def test_a_failed_optional_scenario_counts_in_the_overall_rate_only() -> None:
    data = healthy()
    optional = _scenario(1) | {"id": 9, "title": "optional", "mandatory": False}
    data["scenarios"].append(optional)
    assert row(gate(data), "overall_pass_rate").verdict == "pass"  # 9 of 9
    data["scenarios"][-1]["verdict"] = "fail"
    data["scenarios"][-1]["rollback"] = [{"action": "heal", "ok": True}]
    result = gate(data)
    assert row(result, "overall_pass_rate").verdict == "fail"  # 8 of 9 = 88.9 %
    assert row(result, "mandatory_pass_rate").verdict == "pass"


def test_overall_pass_rate_below_90_percent_blocks() -> None:
    data = healthy()
    for sid in (9, 10):
        extra = _scenario(1) | {
            "id": sid,
            "title": f"optional {sid}",
            "mandatory": False,
            "verdict": "fail",
            "rollback": [{"action": "heal", "ok": True}],
        }
        data["scenarios"].append(extra)
    result = gate(data)
    assert row(result, "overall_pass_rate").verdict == "fail"  # 8 of 10
    assert "row.overall_pass_rate" in {b.id for b in result.blockers}


BLOCKER_CASES = [
    (
        "silent critical alert",
        lambda j: j["scenarios"][3]["criteria"][1].update(verdict="fail", measured="silent"),
        "alert.4.ApiErrorRateHigh",
    ),
    (
        "rollback failed",
        lambda j: (
            _fail_scenario(2)(j),
            j["scenarios"][1]["rollback"][1].update(ok=False, detail="exit 1"),
        ),
        "rollback.2.reconcile",
    ),
    (
        "no rollback path",
        lambda j: (_fail_scenario(3)(j), j["scenarios"][2].update(rollback=[])),
        "rollback.3",
    ),
    (
        "drill aborted",
        lambda j: j.update(status="aborted", abort_reason="interrupted"),
        "drill.incomplete",
    ),
    ("redis never recovered", _set("scenarios.4.faults.0.recovery_s", None), "recovery.5"),
]


@pytest.mark.parametrize(
    ("change", "blocker"), [c[1:] for c in BLOCKER_CASES], ids=[c[0] for c in BLOCKER_CASES]
)
def test_each_blocker_condition_forces_no_go(
    change: Callable[[dict[str, Any]], None], blocker: str
) -> None:
    data = healthy()
    change(data)
    result = gate(data)
    assert blocker in {b.id for b in result.blockers}
    assert result.decision is Decision.NO_GO
    assert result.exit_code == 1


def test_a_silent_non_critical_alert_is_a_risk_not_a_blocker() -> None:
    data = healthy()
    data["scenarios"][4]["criteria"].append(
        {
            "text": "alert RedisUnavailable pages",
            "measure": "alerts.RedisUnavailable",
            "verdict": "fail",
            "measured": "silent",
            "severity": "P0",
        }
    )
    data["scenarios"][4]["verdict"] = "fail"
    data["scenarios"][4]["rollback"] = [{"action": "heal", "ok": True}]
    result = gate(data)
    assert not any(b.id.startswith("alert.") for b in result.blockers)
    risk = next(r for r in result.risks if r.id == "scenario.5")
    assert risk.detectability_gap == 3


def _accept(rid: str, **over: Any) -> Acceptance:
    base = Acceptance(id=rid, mitigation="page the DBA; pool raised to 40", owner="dana",
                      due=TODAY + dt.timedelta(days=7), rollback_ready=True)  # fmt: skip
    return msgspec.structs.replace(base, **over)


def test_an_accepted_medium_risk_is_conditional_go() -> None:
    data = healthy()
    data["steady"]["critical_p95_s"]["pay"] = 1.8  # warn: 3 x 3 x 1 = 9, low
    data["webhooks"]["success_rate"] = 0.985  # warn: 4 x 3 x 2 = 24, medium
    open_ = gate(data)
    assert open_.decision is Decision.NO_GO
    assert {r.id: r.band for r in open_.risks} == {
        "row.p95_critical": "low",
        "row.webhook_success": "medium",
    }
    result = gate(data, [_accept("row.webhook_success")])
    assert result.decision is Decision.CONDITIONAL_GO, result.reasons
    assert result.exit_code == 4
    assert next(r for r in result.risks if r.id == "row.webhook_success").status == "accepted"


def test_only_low_risks_are_go() -> None:
    data = healthy()
    data["steady"]["critical_p95_s"]["pay"] = 1.8
    assert gate(data).decision is Decision.GO


@pytest.mark.parametrize(
    ("acceptance", "refusal"),
    [
        (_accept("row.duplicate_charges"), "blocker"),
        (_accept("row.webhook_success", rollback_ready=False), "rollback is not ready"),
        (_accept("row.webhook_success", due=TODAY - dt.timedelta(days=1)), "has passed"),
        (_accept("row.nothing"), "no such open risk"),
    ],
    ids=["blocker", "no rollback", "overdue", "stale"],
)
def test_acceptances_that_cannot_count_are_refused(acceptance: Acceptance, refusal: str) -> None:
    data = healthy()
    data["webhooks"]["success_rate"] = 0.985
    data["scenarios"][0]["checks"][0]["figures"]["bookings_charged_twice"] = 1
    result = gate(data, [acceptance])
    assert any(refusal in why for why in result.refused), result.refused
    assert result.decision is Decision.NO_GO


def test_an_unmeasured_row_is_a_medium_risk_a_team_may_accept() -> None:
    data = healthy()
    data["db_pool"] = {"steady": None, "peak": None, "error": "no Prometheus"}
    result = gate(data)
    risk = next(r for r in result.risks if r.id == "row.db_pool")
    assert (risk.score, risk.band) == (24, "medium")  # 4 x 2 x 3: nothing would page
    assert gate(data, [_accept("row.db_pool")]).decision is Decision.CONDITIONAL_GO


def test_risk_config_overrides_the_weights(tmp_path: Path) -> None:
    path = tmp_path / "risk.yaml"
    path.write_text("rows:\n  webhook_success: {impact: 5, likelihood: 5, detectability_gap: 3}\n")
    data = healthy()
    data["webhooks"]["success_rate"] = 0.985
    result = decide(parse_journal(data), config=load_risk_config(path), today=TODAY)
    risk = next(r for r in result.risks if r.id == "row.webhook_success")
    assert (risk.score, risk.band) == (75, "high")
    refused = decide(
        parse_journal(data),
        config=load_risk_config(path),
        today=TODAY,
        acceptances=[_accept("row.webhook_success")],
    ).refused
    assert any("high risk" in why for why in refused)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (
            "accepted:\n  - {id: x, mitigation: fix it, owner: a, due: 2026-13-01, "
            "rollback_ready: true}\n",
            "$.accepted[0].due",
        ),
        (
            "accepted:\n  - {id: x, mitigation: fix it, due: 2026-12-01, rollback_ready: true}\n",
            "owner",
        ),
        (
            "accepted:\n  - {id: x, mitigation: fix it, owner: a, due: 2026-12-01, "
            "rollback_ready: true, colour: red}\n",
            "colour",
        ),
        ("accepted: {id: x}\n", "$.accepted"),
        ("accepted: [\n", "not valid YAML"),
        (
            "accepted:\n  - {id: x, mitigation: fix, owner: a, due: 2026-12-01,"
            " rollback_ready: true}\n"
            "  - {id: x, mitigation: fix2, owner: b, due: 2026-12-01, rollback_ready: true}\n",
            "duplicate id",
        ),
    ],
    ids=["bad date", "missing owner", "unknown field", "not a list", "bad yaml", "duplicate"],
)
def test_a_malformed_accepted_risks_file_names_the_field(
    tmp_path: Path, text: str, field: str
) -> None:
    path = tmp_path / "accepted.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as caught:
        load_accepted(path)
    assert field in str(caught.value)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"journal_version": 2}, "journal_version 1"),
        ({"journal_version": 1}, "status"),
        (
            {"journal_version": 1, "status": "complete", "scenarios": [{"id": "one"}]},
            "$.scenarios[0].id",
        ),
        (
            {
                "journal_version": 1,
                "status": "complete",
                "scenarios": [_scenario(1) | {"verdict": "maybe"}],
            },
            "$.scenarios[0].verdict",
        ),
    ],
    ids=["version", "missing status", "id type", "verdict value"],
)
def test_a_malformed_journal_names_the_field(data: dict[str, Any], field: str) -> None:
    with pytest.raises(JournalError) as caught:
        parse_journal(data)
    assert field in str(caught.value)
