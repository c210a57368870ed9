"""``double-booking`` (playbook 002) and ``stuck-holds``: inventory that is wrong.

Double booking: active (held or confirmed) bookings of one resource whose ranges overlap,
grouped into clusters. The playbook's canonical booking of a cluster is the one with the
earliest completed payment, then the earliest booking; the others are cancelled through the
service's admin API (which refunds a paid booking first, under its own lock and audit), and
the re-diagnosis must find exactly one active booking left per cluster.

Stuck holds: held bookings past their expiry plus a grace period, still blocking the slot
because the expiry job did not run; they are cancelled the same way.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from gameday.runbooks.context import RunbookError, Runtime, utc
from gameday.runbooks.model import Change, Diagnosis, Finding

_ACTIVE = (
    "SELECT b.id, b.resource_id, b.user_id, b.starts_at, b.ends_at, b.status, b.created_at, "
    "b.hold_expires_at, b.amount_cents, b.currency FROM bookings b "
    "WHERE b.status IN ('held', 'confirmed') ORDER BY b.resource_id, b.starts_at, b.id"
)
_PAID = (
    "SELECT p.booking_id, p.amount_cents, MIN(t.at) AS paid_at FROM payments p "
    "LEFT JOIN payment_transitions t ON t.payment_id = p.id AND t.to_status = 'succeeded' "
    "WHERE p.status = 'succeeded' GROUP BY p.booking_id, p.amount_cents"
)
_LIMIT = 20
HOLD_GRACE = timedelta(minutes=2)
_FAR = datetime.max.replace(tzinfo=UTC)


def clusters(rows: list[Any]) -> list[list[Any]]:
    """Groups of active bookings of one resource linked by overlapping ranges."""
    found: list[list[Any]] = []
    by_resource: dict[int, list[Any]] = defaultdict(list)
    for row in rows:
        by_resource[int(row["resource_id"])].append(row)
    for bookings in by_resource.values():
        bookings.sort(key=lambda r: (utc(r["starts_at"]), r["id"]))
        current: list[Any] = []
        end = None
        for row in bookings:
            if current and end is not None and utc(row["starts_at"]) < end:
                current.append(row)
                end = max(end, utc(row["ends_at"]))
            else:
                if len(current) > 1:
                    found.append(current)
                current, end = [row], utc(row["ends_at"])
        if len(current) > 1:
            found.append(current)
    return found


async def diagnose_double_booking(rt: Runtime) -> Diagnosis:
    active = await rt.rows(_ACTIVE)
    paid = {int(r["booking_id"]): r for r in await rt.rows(_PAID)}
    changes, evidence, facts = [], [], {}
    groups = clusters(active)
    for group in groups:

        def rank(row: Any) -> tuple[datetime, datetime, int]:
            p = paid.get(int(row["id"]))
            paid_at = utc(p["paid_at"]) if p is not None and p["paid_at"] else _FAR
            if p is None:
                paid_at = _FAR
            return paid_at, utc(row["created_at"]), int(row["id"])

        keep = min(group, key=rank)
        others = [r for r in group if r["id"] != keep["id"]]
        evidence.append(
            {
                "resource_id": int(keep["resource_id"]),
                "kept": int(keep["id"]),
                "cancel": [int(r["id"]) for r in others],
            }
        )
        for row in others:
            refund = int(paid[int(row["id"])]["amount_cents"]) if int(row["id"]) in paid else 0
            changes.append(
                Change(
                    "cancel_booking",
                    f"booking:{row['id']}",
                    f"overlaps booking {keep['id']} on resource {row['resource_id']} "
                    f"(kept: {'paid first' if int(keep['id']) in paid else 'booked first'})",
                    amount_cents=refund,
                    currency=str(row["currency"]),
                    rows=1,
                    detail={
                        "resource_id": int(row["resource_id"]),
                        "status": row["status"],
                        "starts_at": str(row["starts_at"]),
                        "ends_at": str(row["ends_at"]),
                    },
                )
            )
            facts[f"booking:{row['id']}"] = row["status"]
        facts[f"booking:{keep['id']}"] = keep["status"]
    overlapping = sum(len(g) - 1 for g in groups)
    findings = (
        [
            Finding(
                f"{len(groups)} slot(s) sold more than once ({overlapping} extra "
                "active booking(s))",
                evidence[:_LIMIT],
            )
        ]
        if groups
        else []
    )
    return Diagnosis(
        "double-booking",
        ["active (held or confirmed) bookings whose ranges overlap on one resource"],
        findings,
        changes,
        facts,
        {"overlapping_bookings": overlapping},
        ["customers of cancelled bookings need the apology template (gameday comms)"]
        if groups
        else [],
    )


async def diagnose_stuck_holds(rt: Runtime) -> Diagnosis:
    now = datetime.now(UTC)
    stuck = [
        r
        for r in await rt.rows(_ACTIVE)
        if r["status"] == "held" and utc(r["hold_expires_at"]) < now - HOLD_GRACE
    ]
    changes = [
        Change(
            "cancel_booking",
            f"booking:{r['id']}",
            f"hold expired at {utc(r['hold_expires_at']).isoformat(timespec='seconds')} "
            "and still blocks the slot",
            rows=1,
            detail={"resource_id": int(r["resource_id"])},
        )
        for r in stuck
    ]
    evidence = [
        {
            "booking_id": int(r["id"]),
            "resource_id": int(r["resource_id"]),
            "expired_at": str(r["hold_expires_at"]),
        }
        for r in stuck[:_LIMIT]
    ]
    findings = (
        [
            Finding(
                f"{len(stuck)} expired hold(s) not released (grace "
                f"{HOLD_GRACE.total_seconds():.0f} s)",
                evidence,
            )
        ]
        if stuck
        else []
    )
    notes = ["holds pile up when the service's expiry job stops: check its logs"] if stuck else []
    return Diagnosis(
        "stuck-holds",
        ["held bookings past their expiry plus a grace period"],
        findings,
        changes,
        {c.subject: "held" for c in changes},
        {"stuck_holds": len(stuck)},
        notes,
    )


async def cancel(rt: Runtime, change: Change, _incident: str) -> str:
    if change.action != "cancel_booking":
        raise RunbookError(f"cannot {change.action} here")
    booking = change.subject.removeprefix("booking:")
    found = await rt.admin(
        "POST", f"/admin/bookings/{booking}/cancel", what=f"cancel of booking {booking}"
    )
    return f"booking {booking} {found.get('status', '?')}"
