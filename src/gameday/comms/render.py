"""The playbooks' communication templates and the post-incident review, filled from facts.

A value no source measured renders as ``[UNKNOWN: field]`` (a Jinja2 ``Undefined`` that
prints its name), so a human sees exactly what to fill and nothing is ever invented. The
status page follows the checks: "monitoring" needs a mitigation on record, and "resolved"
is refused while any invariant still fails.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import jinja2

from gameday.comms.facts import Booking, Facts
from gameday.gate.journal import Journal
from gameday.report.defects import defects

TEMPLATES = {
    "internal": "internal incident notification (engineering, support, leadership)",
    "status-investigating": "status page: investigating",
    "status-identified": "status page: identified",
    "status-monitoring": "status page: monitoring (needs a mitigation on record)",
    "status-resolved": "status page: resolved (refused while an invariant fails)",
    "customer-payment-recovery": "one e-mail per customer refunded a duplicate charge",
    "customer-double-booking": "one apology per customer whose booking was cancelled",
}
DUE = {"P0": 2, "P1": 7, "P2": 30}
"""Days to fix by severity (the playbook: P0 two days, P1 a week)."""


class PhaseRefused(ValueError):  # noqa: N818 - named for what happened
    """The evidence does not allow this template yet (e.g. resolved while failing)."""


class Unknown(jinja2.Undefined):
    def __str__(self) -> str:
        return f"[UNKNOWN: {self._undefined_name}]"

    def __iter__(self) -> Any:
        return iter(())


def _when(at: dt.datetime | None) -> str | None:
    return at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if at else None


def _span(delta: dt.timedelta | None) -> str | None:
    if delta is None:
        return None
    seconds = int(delta.total_seconds())
    return f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s"


def _money(cents: int | None, currency: str | None) -> str | None:
    if cents is None or not currency:
        return None
    return f"{cents / 100:.2f} {currency.upper()}"


def headline(f: Facts) -> str | None:
    parts = []
    if f.duplicate_charges:
        parts.append(f"duplicate charges on {f.duplicate_charges} booking(s)")
    if f.double_booked_slots:
        parts.append(f"{f.double_booked_slots} booking(s) overlapping on slots sold twice")
    if f.failed_events:
        parts.append(f"{f.failed_events} payment webhook(s) not applied")
    if not parts and f.failed_criteria:
        parts.append(str(f.failed_criteria[0]["text"]))
    return "; ".join(parts) or None


def _booking(b: Booking) -> dict[str, Any]:
    found: dict[str, Any] = {"id": b.id}
    if (amount := _money(b.amount_cents, b.currency)) is not None:
        found["amount"] = amount
    if b.starts_at:
        found["starts_at"] = b.starts_at
    if b.refund:
        found["refund"] = b.refund
    return found


def context(f: Facts, now: dt.datetime) -> dict[str, Any]:
    status = (
        "RESOLVED"
        if f.resolved_at and not f.failing
        else "MITIGATED"
        if f.mitigated_at
        else "INVESTIGATING"
    )
    end = f.resolved_at or f.mitigated_at
    values: dict[str, Any] = {
        "incident": f.incident,
        "severity": f.severity,
        "status": status,
        "headline": headline(f),
        "area": (
            "payments"
            if f.duplicate_charges or f.failed_events
            else "bookings"
            if f.double_booked_slots
            else None
        ),
        "impact_started_at": _when(f.impact_started_at),
        "detected_at": _when(f.detected_at),
        "mitigated_at": _when(f.mitigated_at),
        "resolved_at": _when(f.resolved_at),
        "ttd": _span(f.time_to_detect),
        "ttr": _span(f.time_to_resolve),
        "duplicate_charges": f.duplicate_charges,
        "double_booked_slots": f.double_booked_slots,
        "failed_events": f.failed_events,
        "refunds": f.refunds,
        "refund_total": _money(f.refund_cents, f.currency),
        "affected_count": len(f.affected_bookings) if f.affected_bookings else None,
        "affected_ids": ", ".join(map(str, f.affected_bookings[:50])) or None,
        "time_range": (
            f"{_when(f.impact_started_at)} and {_when(end)}"
            if f.impact_started_at and end
            else None
        ),
        "invariants_now": ", ".join(f"{k} {v}" for k, v in sorted(f.invariants.items())) or None,
        "timeline": [f"{_when(at)} {what}" for at, what in f.timeline[-30:]],
        "now": _when(now),
    }
    return {k: v for k, v in values.items() if v is not None}


def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("gameday.comms", "templates"),
        autoescape=False,  # noqa: S701 - plain text for e-mails and status pages, not HTML
        undefined=Unknown,
        keep_trailing_newline=True,
    )


def render(template: str, f: Facts, now: dt.datetime | None = None) -> str:
    if template not in TEMPLATES:
        raise PhaseRefused(f"no template {template!r}: choose from {', '.join(TEMPLATES)}")
    if template == "status-resolved" and f.failing:
        failing = ", ".join(f"{k} {v}" for k, v in sorted(f.failing.items()))
        raise PhaseRefused(f"'resolved' refused: invariants still failing ({failing})")
    if template == "status-monitoring" and f.mitigated_at is None:
        raise PhaseRefused("'monitoring' refused: no mitigation on record yet")
    ctx = context(f, now or dt.datetime.now(dt.UTC))
    if template.startswith("customer-"):
        chosen = f.refunded if template == "customer-payment-recovery" else f.cancelled
        if not chosen:
            raise PhaseRefused(f"{template}: no affected customer in the evidence")
        ctx["bookings"] = [_booking(b) for b in chosen]
    return _env().get_template(f"{template}.md.j2").render(**ctx)


def review(f: Facts, journal: Journal | None, today: dt.date) -> str:
    """The post-incident review as Markdown; root cause and resolution stay for a human."""
    ctx = context(f, dt.datetime.now(dt.UTC))
    unknown = "[UNKNOWN: {}]".format

    def v(key: str) -> str:
        return str(ctx.get(key, unknown(key)))

    items = []
    if journal is not None:
        for d in defects(journal):
            items.append(
                (
                    d.severity,
                    d.priority,
                    f"{d.title} (scenario {d.scenario}: measured {d.measured})",
                )
            )
    for name, count in sorted(f.failing.items()):
        if journal is None or name not in ("duplicate_charges", "double_booked_slots"):
            items.append(("P0", 0, f"invariant {name} still fails ({count})"))
    lines = [
        f"# Post-incident review: {v('incident')}",
        "",
        "## Summary",
        "",
        f"{v('headline')}. Severity {v('severity')}; status {v('status')}.",
        "",
        "## Impact",
        "",
        f"- Affected bookings: {v('affected_count')} ({v('affected_ids')})",
        f"- Duplicate charges: {v('duplicate_charges')}",
        f"- Slots sold more than once: {v('double_booked_slots')}",
        f"- Webhook events not applied: {v('failed_events')}",
        f"- Refunds: {v('refunds')} totalling {v('refund_total')}",
        "",
        "## Times (from the events)",
        "",
        f"- Impact started (first fault or finding): {v('impact_started_at')}",
        f"- Detected (first alert or diagnosis): {v('detected_at')}",
        f"- Mitigated (first heal or apply): {v('mitigated_at')}",
        f"- Resolved (invariants back to zero): {v('resolved_at')}",
        f"- Time to detect: {v('ttd')}; time to resolve: {v('ttr')}",
        "",
        "## Timeline",
        "",
        *[f"- {line}" for line in ctx.get("timeline", [])],
        "",
        "## Root cause",
        "",
        "[TO FILL: root cause]",
        "",
        "## Resolution",
        "",
        "[TO FILL: resolution]",
        "",
        "## Action items",
        "",
        "| Severity | Priority | Action | Owner | Due |",
        "|---|---|---|---|---|",
    ]
    for severity, priority, text in sorted(items, key=lambda i: (i[0], -i[1])):
        due = today + dt.timedelta(days=DUE.get(severity, 30))
        lines.append(
            f"| {severity} | {priority or '—'} | {text.replace('|', '/')} | "
            f"[TO FILL: owner] | {due.isoformat()} |"
        )
    if not items:
        lines.append("| — | — | no failed criterion or invariant on record | — | — |")
    lines += ["", f"Sources: {', '.join(f.sources) or 'none'}.", ""]
    return "\n".join(lines)
