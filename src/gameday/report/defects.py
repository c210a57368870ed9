"""Part 7.2 and 7.3: each failed criterion becomes a defect with a severity (P0 data loss,
duplicate charge, double booking; P1 critical path unstable or recovery failed; P2
degraded with a workaround) and a priority score, next to the rollback action the drill
took, so triage starts from a ranked list instead of a meeting."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gameday.gate.journal import Journal
from gameday.gate.risk import DEFAULT_EFFORT, RiskConfig, kind_weights

SEVERITY_WEIGHT = {"P0": 5, "P1": 3, "P2": 1}


@dataclass(frozen=True)
class Defect:
    id: str
    scenario: int
    title: str
    severity: str
    measured: str
    priority: int
    rollback: str

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


def priority(severity: str, customer_impact: int, recurrence: int, effort: int) -> int:
    """(Severity x 3) + (Customer impact x 2) + (Recurrence risk x 2) - Fix effort."""
    return SEVERITY_WEIGHT[severity] * 3 + customer_impact * 2 + recurrence * 2 - effort


def defects(j: Journal, config: RiskConfig | None = None) -> list[Defect]:
    config = config or RiskConfig()
    found = []
    for s in j.scenarios:
        impact, likelihood = kind_weights(s.kind, config)
        weights = config.kinds.get(s.kind)
        effort = (weights.effort if weights else None) or DEFAULT_EFFORT
        rollback = (
            "; ".join(
                f"{r.action}: " + ("done" if r.ok else "FAILED" if r.ok is False else "for a human")
                for r in s.rollback
            )
            or "none taken"
        )
        for n, c in enumerate(s.criteria, 1):
            if c.verdict != "fail":
                continue
            measured = f"{c.measured} (threshold {c.threshold})" + (f": {c.why}" if c.why else "")
            found.append(
                Defect(
                    f"GD-{s.id}.{n}",
                    s.id,
                    c.text,
                    c.severity,
                    measured,
                    priority(c.severity, impact, likelihood, effort),
                    rollback,
                )
            )
    return sorted(found, key=lambda d: (-d.priority, d.severity, d.id))
