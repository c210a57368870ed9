"""The Go/No-Go decision: Part 6.1's rows, Part 6.3's blockers, Part 6.4's risks and rules.

- GO: no blocker, every mandatory scenario passed, no high risk and no medium risk left
  open (the playbook: a medium risk is fixed or mitigated before launch).
- CONDITIONAL GO: as GO, except that some medium risks are open under an accepted
  mitigation (owner, due date, rollback ready).
- NO-GO: any blocker, any high risk, or any medium risk without an accepted mitigation.

A journal of a drill that did not complete is NO-GO too, with the reason as its blocker:
half a drill proves nothing about the other half.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from gameday.alerts.rules import drill_rules
from gameday.gate.journal import Journal
from gameday.gate.risk import Acceptance, Risk, RiskConfig, accept, score
from gameday.gate.rows import MTTR_BLOCK_S, Row, evaluate


class Decision(Enum):
    GO = "GO"
    CONDITIONAL_GO = "CONDITIONAL GO"
    NO_GO = "NO-GO"


EXIT_CODES = {Decision.GO: 0, Decision.NO_GO: 1, Decision.CONDITIONAL_GO: 4}
"""0 GO, 1 NO-GO, 4 CONDITIONAL GO; 2 is a usage or input error and 3 "the drill could not
run", shared by every gameday command."""


@dataclass(frozen=True)
class Blocker:
    id: str
    text: str
    evidence: str

    def to_json(self) -> dict[str, str]:
        return {"id": self.id, "text": self.text, "evidence": self.evidence}


@dataclass
class GateResult:
    decision: Decision
    rows: list[Row]
    blockers: list[Blocker]
    risks: list[Risk]
    refused: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.decision]

    def to_json(self) -> dict[str, Any]:
        return {
            "decision": self.decision.value,
            "exit_code": self.exit_code,
            "reasons": self.reasons,
            "rows": [r.to_json() for r in self.rows],
            "blockers": [b.to_json() for b in self.blockers],
            "risks": [r.to_json() for r in self.risks],
            "refused_acceptances": self.refused,
        }


_CRITICAL_ALERTS = {r.name for r in drill_rules("real") if r.severity == "critical"}


def blockers(j: Journal, rows: list[Row]) -> list[Blocker]:
    found = [
        Blocker(f"row.{r.id}", f"{r.category}: {r.measured} (blocker: {r.blocker_when})", r.detail)
        for r in rows
        if r.blocker
    ]
    if j.status != "complete":
        found.append(
            Blocker("drill.incomplete", "the drill did not complete", j.abort_reason or j.status)
        )
    for s in j.scenarios:
        if s.kind in ("db", "cache"):
            for f in s.faults:
                total = None if f.recovery_s is None else f.healed_t - f.injected_t + f.recovery_s
                if f.kind == "down" and (total is None or total > MTTR_BLOCK_S):
                    found.append(
                        Blocker(
                            f"recovery.{s.id}",
                            f"{f.target} outage not recovered in runbook time",
                            f"scenario {s.id}: "
                            + ("never recovered" if total is None else f"{total:.0f} s"),
                        )
                    )
        for c in s.criteria:
            name = c.measure.removeprefix("alerts.")
            if c.measure.startswith("alerts.") and c.verdict == "fail" and name in _CRITICAL_ALERTS:
                found.append(
                    Blocker(
                        f"alert.{s.id}.{name}",
                        f"critical alert {name} did not fire",
                        f"scenario {s.id}: {c.why}",
                    )
                )
        if s.verdict != "pass":
            actions = [r for r in s.rollback if r.action in ("heal", "reconcile")]
            if not actions:
                found.append(
                    Blocker(
                        f"rollback.{s.id}",
                        "no rollback path was taken",
                        f"scenario {s.id} {s.verdict} without heal/reconcile",
                    )
                )
            for r in actions:
                if r.ok is False:
                    found.append(
                        Blocker(
                            f"rollback.{s.id}.{r.action}",
                            f"rollback action {r.action} failed",
                            f"scenario {s.id}: {r.detail}",
                        )
                    )
    return found


def decide(
    j: Journal,
    *,
    config: RiskConfig | None = None,
    acceptances: list[Acceptance] | None = None,
    today: dt.date | None = None,
) -> GateResult:
    rows = evaluate(j)
    found = blockers(j, rows)
    risks = score(j.scenarios, rows, config or RiskConfig())
    blocking = {b.id for b in found} | {
        f"scenario.{s.id}" for s in j.scenarios if s.mandatory and s.verdict != "pass"
    }
    refused = accept(risks, acceptances or [], today or dt.date.today(), blocking)
    high = [r for r in risks if r.band == "high"]
    open_medium = [r for r in risks if r.band == "medium" and r.status == "open"]
    accepted_medium = [r for r in risks if r.band == "medium" and r.status == "accepted"]
    mandatory = next(r for r in rows if r.id == "mandatory_pass_rate")
    reasons = [f"blocker: {b.text}" for b in found]
    if mandatory.verdict != "pass" and not any(b.id == "row.mandatory_pass_rate" for b in found):
        reasons.append("not every mandatory scenario passed")
    reasons += [f"high risk {r.id} (score {r.score})" for r in high]
    reasons += [
        f"medium risk {r.id} (score {r.score}) has no accepted mitigation" for r in open_medium
    ]
    if reasons:
        decision = Decision.NO_GO
    elif accepted_medium:
        decision = Decision.CONDITIONAL_GO
        reasons = [
            f"medium risk {r.id} accepted: owner {r.acceptance and r.acceptance['owner']}"
            for r in accepted_medium
        ]
    else:
        decision = Decision.GO
    return GateResult(decision, rows, found, risks, refused, reasons)
