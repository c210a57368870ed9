"""The facts of an incident, gathered only from evidence: a drill's journal and the
runbooks' audit trail. Nothing here is estimated or defaulted: a figure no source measured
stays ``None`` and the templates show it as ``[UNKNOWN: field]`` for a human to fill.

Times follow the events, never a person's memory: impact starts at the first fault
injected (or the first finding recorded), detection is the first alert (or diagnosis),
mitigation the first apply, resolution the first moment every invariant is back to zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from gameday.gate.journal import Journal, JournalError, read_journal


class FactsError(ValueError):
    """A source that cannot be read; one line naming the file (and field)."""


@dataclass
class Booking:
    id: int
    amount_cents: int | None = None
    currency: str | None = None
    starts_at: str | None = None
    refund: str | None = None
    """The provider object of its refund, if one was made."""


@dataclass
class Facts:
    incident: str | None = None
    severity: str | None = None
    summary: str | None = None
    impact_started_at: datetime | None = None
    detected_at: datetime | None = None
    mitigated_at: datetime | None = None
    resolved_at: datetime | None = None
    duplicate_charges: int | None = None
    double_booked_slots: int | None = None
    failed_events: int | None = None
    refunds: int | None = None
    refund_cents: int | None = None
    currency: str | None = None
    affected_bookings: list[int] = field(default_factory=list)
    cancelled: list[Booking] = field(default_factory=list)
    refunded: list[Booking] = field(default_factory=list)
    invariants: dict[str, int] = field(default_factory=dict)
    """The latest count of each invariant (0: holds)."""
    timeline: list[tuple[datetime, str]] = field(default_factory=list)
    failed_criteria: list[dict[str, Any]] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    journal: Journal | None = None
    """The drill's journal the facts came from, if any (the review lists its defects)."""

    @property
    def failing(self) -> dict[str, int]:
        return {k: v for k, v in self.invariants.items() if v}

    @property
    def time_to_detect(self) -> timedelta | None:
        if self.impact_started_at and self.detected_at:
            return self.detected_at - self.impact_started_at
        return None

    @property
    def time_to_resolve(self) -> timedelta | None:
        if self.impact_started_at and self.resolved_at:
            return self.resolved_at - self.impact_started_at
        return None


def _at(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _min(*values: datetime | None) -> datetime | None:
    present = [v for v in values if v is not None]
    return min(present) if present else None


def from_journal(facts: Facts, journal: Journal) -> None:
    start = _at(journal.started_at)
    facts.sources.append("drill journal")
    if start is None:
        return

    def wall(t: float) -> datetime:
        return start + timedelta(seconds=t)

    events = [
        e for e in journal.timeline if e.kind in ("inject", "heal", "alert", "verdict", "rollback")
    ]
    injected = [wall(e.t) for e in events if e.kind == "inject"]
    healed = [wall(e.t) for e in events if e.kind in ("heal", "rollback")]
    fired = [_at(a.received_at) for a in journal.alerts if a.status == "firing"]
    # Without a fault the impact is the first scenario that failed, and its verdict is the
    # detection (the drill's checkers found it, no alert did).
    failed = [s for s in journal.scenarios if s.verdict == "fail"]
    # A rollback starts only once a failing verdict is reached (journaled just after it).
    verdicts = [
        wall(e.t)
        for e in events
        if (e.kind == "verdict" and e.what == "fail") or e.kind == "rollback"
    ]
    facts.impact_started_at = _min(
        facts.impact_started_at, *(injected or [wall(s.started_t) for s in failed])[:1]
    )
    facts.detected_at = _min(facts.detected_at, *(fired or verdicts)[:1])
    facts.mitigated_at = _min(facts.mitigated_at, *healed[:1])
    _journal_checks(facts, journal)
    passed = bool(journal.scenarios) and all(s.verdict == "pass" for s in journal.scenarios)
    if passed and journal.finished_at:
        facts.resolved_at = _min(facts.resolved_at, _at(journal.finished_at))
    for e in events:
        scenario = f" (scenario {e.scenario})" if e.scenario else ""
        facts.timeline.append((wall(e.t), f"{e.kind} {e.what}{scenario}"))


def _journal_checks(facts: Facts, journal: Journal) -> None:
    """Duplicate charges and slots, affected bookings and failed criteria of every scenario."""
    charged = slots = 0
    seen = False
    for s in journal.scenarios:
        for c in s.checks:
            if c.name == "no_duplicate_charge" and "bookings_charged_twice" in c.figures:
                charged += int(c.figures["bookings_charged_twice"])
                seen = True
            if c.name == "no_double_booking" and "duplicate_confirmed_slots" in c.figures:
                slots += int(c.figures["duplicate_confirmed_slots"])
            if c.verdict == "fail":
                facts.affected_bookings += [
                    int(item["booking_id"])
                    for item in c.evidence
                    if isinstance(item.get("booking_id"), int)
                ]
        facts.failed_criteria += [
            {
                "scenario": s.id,
                "title": s.title,
                "text": c.text,
                "severity": c.severity,
                "measured": c.measured,
                "threshold": c.threshold,
            }
            for c in s.criteria
            if c.verdict == "fail"
        ]
    if seen:
        facts.duplicate_charges, facts.double_booked_slots = charged, slots
        facts.invariants.setdefault("duplicate_charges", charged)
        facts.invariants.setdefault("double_booked_slots", slots)


def read_audit(path: Path, incident: str | None) -> list[dict[str, Any]]:
    try:
        lines = path.read_bytes().splitlines()
    except OSError as error:
        raise FactsError(f"{path}: {error.strerror}") from None
    records = []
    for n, line in enumerate(lines, 1):
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise FactsError(f"{path}:{n}: not a JSON line") from None
        if not isinstance(record, dict) or "runbook" not in record or "at" not in record:
            raise FactsError(f"{path}:{n}: not a runbook audit record (runbook, at)")
        if incident is None or record.get("incident") == incident:
            records.append(record)
    return records


def from_audit(facts: Facts, records: list[dict[str, Any]]) -> None:
    if not records:
        return
    facts.sources.append("runbook audit")
    facts.incident = facts.incident or records[-1].get("incident")
    refunds = cents = 0
    for r in records:
        at = _at(r.get("at"))
        mode = r.get("mode")
        found = r.get("invariants") or r.get("invariants_before") or {}
        if mode == "diagnose" and any(found.values()):
            facts.impact_started_at = _min(facts.impact_started_at, at)
            facts.detected_at = _min(facts.detected_at, at)
        if mode == "apply" and r.get("outcome") in ("verified", "incomplete"):
            facts.mitigated_at = _min(facts.mitigated_at, at)
            n, total = _applied_changes(facts, r.get("changes", []))
            refunds, cents = refunds + n, cents + total
        latest = r.get("invariants_after") if mode == "apply" else r.get("invariants")
        if isinstance(latest, dict):
            facts.invariants.update({str(k): int(v) for k, v in latest.items()})
            if mode == "apply" and r.get("outcome") == "verified" and not any(latest.values()):
                facts.resolved_at = _min(facts.resolved_at, at)
        _worst_counts(facts, found)
        if at is not None:
            facts.timeline.append((at, f"runbook {r['runbook']} {mode}: {r.get('outcome', '')}"))
    if refunds:
        facts.refunds, facts.refund_cents = refunds, cents
    facts.affected_bookings += [b.id for b in facts.refunded + facts.cancelled]
    if facts.resolved_at is not None and facts.failing:
        facts.resolved_at = None  # a later run found the problem again


def _worst_counts(facts: Facts, found: dict[str, Any]) -> None:
    """The largest count any run saw of each impact figure."""
    for key, attr in (
        ("duplicate_charges", "duplicate_charges"),
        ("overlapping_bookings", "double_booked_slots"),
        ("failed_events", "failed_events"),
    ):
        if key in found:
            setattr(facts, attr, max(getattr(facts, attr) or 0, int(found[key])))


def _applied_changes(facts: Facts, changes: list[dict[str, Any]]) -> tuple[int, int]:
    """Records what the applied changes did; returns the refunds' count and total."""
    refunds = cents = 0
    for change in changes:
        if not change.get("ok"):
            continue
        detail = change.get("detail") or {}
        if change.get("amount_cents"):
            refunds += 1
            cents += int(change["amount_cents"])
            facts.currency = change.get("currency") or facts.currency
        if change.get("action") == "refund_intent":
            facts.refunded.append(
                Booking(
                    int(detail.get("booking_id", 0)),
                    change.get("amount_cents"),
                    change.get("currency"),
                    None,
                    change.get("subject"),
                )
            )
        if change.get("action") == "cancel_booking":
            facts.cancelled.append(
                Booking(
                    int(str(change["subject"]).removeprefix("booking:")),
                    change.get("amount_cents") or None,
                    change.get("currency"),
                    detail.get("starts_at"),
                )
            )
    return refunds, cents


def gather(journal: Path | None, audit: Path | None, incident: str | None) -> Facts:
    facts = Facts(incident=incident)
    if journal is not None:
        try:
            typed, _raw = read_journal(journal / "journal.json" if journal.is_dir() else journal)
        except JournalError as error:
            raise FactsError(str(error)) from None
        from_journal(facts, typed)
        facts.journal = typed
    if audit is not None:
        from_audit(facts, read_audit(audit, incident))
    facts.affected_bookings = sorted(set(facts.affected_bookings))
    facts.timeline.sort()
    if facts.duplicate_charges or facts.double_booked_slots:
        facts.severity = "P0"
    elif facts.failing or facts.failed_criteria:
        facts.severity = "P1"
    return facts
