"""What a runbook finds and what it proposes to change, as data with a stable hash.

A diagnosis ends in a ``Plan``: the exact changes (rows, ids, amounts, provider objects)
and the facts they rest on. Its digest covers both, so ``--apply --plan DIGEST`` can
re-diagnose and refuse when anything moved in between (drift): an operator approves a
data diff, not a step name, and the diff they approved is the one applied.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import orjson

Severity = Literal["critical", "high", "medium"]


@dataclass(frozen=True)
class Change:
    action: str
    """``refund_intent``, ``cancel_booking``, ``replay_event``…: what the runbook's
    ``apply`` knows how to do."""
    subject: str
    """The object changed: ``pi_…``, ``booking:42``, ``event:evt_…``."""
    why: str
    amount_cents: int = 0
    """Money this change moves back to a customer (counted against ``--max-refund``)."""
    currency: str = ""
    rows: int = 0
    """Rows of ours it changes (counted against ``--max-rows``)."""
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Change:
        return cls(**data)


@dataclass(frozen=True)
class Finding:
    what: str
    evidence: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Diagnosis:
    runbook: str
    checked: list[str]
    """The symptoms looked at, in order (shown even when nothing is wrong)."""
    findings: list[Finding]
    changes: list[Change]
    facts: dict[str, Any]
    """What the changes rest on (statuses, amounts): part of the plan's digest."""
    invariants: dict[str, int]
    """Counts that must reach 0 (``duplicate_charges``, ``overlapping_bookings``…)."""
    notes: list[str] = field(default_factory=list)
    """Read-only observations and suggested manual steps."""

    @property
    def healthy(self) -> bool:
        return not self.changes and not any(self.invariants.values())


def canonical(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


@dataclass(frozen=True)
class Plan:
    runbook: str
    incident: str
    target: str
    changes: list[Change]
    facts: dict[str, Any]
    scope: dict[str, Any] = field(default_factory=dict)
    """The runbook's own options the diagnosis ran with (``--source``…)."""

    @property
    def digest(self) -> str:
        body = {
            "runbook": self.runbook,
            "incident": self.incident,
            "target": self.target,
            "changes": [c.to_json() for c in self.changes],
            "facts": self.facts,
        }
        if self.scope:
            body["scope"] = self.scope
        return hashlib.sha256(canonical(body)).hexdigest()[:16]

    def to_json(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "runbook": self.runbook,
            "incident": self.incident,
            "target": self.target,
            "changes": [c.to_json() for c in self.changes],
            "facts": self.facts,
            "scope": self.scope,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Plan:
        return cls(
            str(data["runbook"]),
            str(data["incident"]),
            str(data["target"]),
            [Change.from_json(c) for c in data["changes"]],
            dict(data["facts"]),
            dict(data.get("scope") or {}),
        )

    def refunds_by_currency(self) -> dict[str, int]:
        totals: dict[str, int] = defaultdict(int)
        for c in self.changes:
            if c.amount_cents:
                totals[c.currency or "?"] += c.amount_cents
        return dict(totals)

    @property
    def rows(self) -> int:
        return sum(c.rows for c in self.changes)


def drift(approved: Plan, fresh: Plan) -> list[str]:
    """What differs between the approved plan and the one the state gives now."""
    was = {canonical(c.to_json()) for c in approved.changes}
    now = {canonical(c.to_json()) for c in fresh.changes}
    lines = [f"no longer planned: {orjson.loads(c)['subject']}" for c in sorted(was - now)]
    lines += [f"newly needed: {orjson.loads(c)['subject']}" for c in sorted(now - was)]
    for key in sorted(set(approved.facts) | set(fresh.facts)):
        if approved.facts.get(key) != fresh.facts.get(key):
            lines.append(f"{key}: {approved.facts.get(key)!r} → {fresh.facts.get(key)!r}")
    return lines or ["the target or incident differs"]
