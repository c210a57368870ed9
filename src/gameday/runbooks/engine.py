"""Plan, then apply: the safety rails every runbook shares.

- A diagnosis is read-only and ends in a saved plan (``plans/DIGEST.json``).
- ``apply`` re-diagnoses and refuses unless the fresh plan has the approved digest (drift),
  refuses the whole plan past a blast-radius cap (money per currency, rows), asks for
  confirmation, applies each change, diagnoses again (until healthy, for a few seconds:
  some effects land asynchronously) and records the invariants before and after
  (``duplicate_charges 3 → 0``).
- Every run, read-only or not, appends one record to ``audit.jsonl`` (flushed and synced:
  it is the evidence that money moved correctly, and must survive a crash).
"""

from __future__ import annotations

import asyncio
import getpass
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from gameday.runbooks.context import RunbookError, Runtime
from gameday.runbooks.model import Change, Diagnosis, Plan, Severity, drift

Diagnose = Callable[[Runtime], Awaitable[Diagnosis]]
SETTLE_S = 5.0
Apply = Callable[[Runtime, Change, str], Awaitable[str]]


@dataclass(frozen=True)
class Runbook:
    name: str
    severity: Severity
    scenario: int | None
    """The drill scenario that exercises it."""
    summary: str
    diagnose: Diagnose
    apply: Apply | None = None


class Refused(RuntimeError):  # noqa: N818 - named for what happened
    """The apply was refused before any change (drift, a cap, no confirmation)."""

    def __init__(self, reason: str, details: list[str] | None = None) -> None:
        super().__init__(reason)
        self.details = details or []


@dataclass(frozen=True)
class Caps:
    max_refund_cents: int | None = None
    max_rows: int | None = None

    def breaches(self, plan: Plan) -> list[str]:
        found = []
        if self.max_refund_cents is not None:
            for currency, cents in plan.refunds_by_currency().items():
                if cents > self.max_refund_cents:
                    found.append(
                        f"refunds of {cents / 100:.2f} {currency.upper()} exceed "
                        f"--max-refund {self.max_refund_cents / 100:.2f}"
                    )
        if self.max_rows is not None and plan.rows > self.max_rows:
            found.append(f"{plan.rows} rows to change exceed --max-rows {self.max_rows}")
        return found


@dataclass
class Outcome:
    change: Change
    ok: bool
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {**self.change.to_json(), "ok": self.ok, "result": self.detail}


@dataclass
class Applied:
    plan: Plan
    before: dict[str, int]
    after: Diagnosis
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def verified(self) -> bool:
        return all(o.ok for o in self.outcomes) and self.after.healthy


class Store:
    """Plans and the audit trail of one working directory (private to the user)."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.plans = directory / "plans"
        self.audit_path = directory / "audit.jsonl"

    def _ensure(self) -> None:
        self.plans.mkdir(mode=0o700, parents=True, exist_ok=True)

    def save(self, plan: Plan) -> Path:
        self._ensure()
        path = self.plans / f"{plan.digest}.json"
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(orjson.dumps(plan.to_json(), option=orjson.OPT_INDENT_2))
        os.replace(tmp, path)
        return path

    def load(self, digest: str) -> Plan:
        if not digest.isalnum() or len(digest) > 64:
            raise RunbookError(f"--plan {digest!r} is not a plan digest")
        path = self.plans / f"{digest}.json"
        try:
            plan = Plan.from_json(orjson.loads(path.read_bytes()))
        except FileNotFoundError:
            raise RunbookError(
                f"no plan {digest} in {self.plans} (run the diagnosis first)"
            ) from None
        except (orjson.JSONDecodeError, KeyError, TypeError) as error:
            raise RunbookError(f"plan {path} is damaged: {error}") from None
        if plan.digest != digest:
            raise RunbookError(f"plan {path} was edited: its content no longer hashes to {digest}")
        return plan

    def audit(self, record: dict[str, Any]) -> None:
        self._ensure()
        line = orjson.dumps(record) + b"\n"
        fd = os.open(self.audit_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)


def who_am_i(explicit: str | None) -> str:
    if explicit:
        return explicit
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


async def diagnose(rb: Runbook, rt: Runtime, incident: str) -> tuple[Diagnosis, Plan]:
    found = await rb.diagnose(rt)
    return found, Plan(rb.name, incident, rt.target.name, found.changes, found.facts, rt.scope)


def diagnosis_record(rb: Runbook, plan: Plan, found: Diagnosis, who: str) -> dict[str, Any]:
    return {
        "at": _now(),
        "who": who,
        "mode": "diagnose",
        "runbook": rb.name,
        "incident": plan.incident,
        "target": plan.target,
        "plan": plan.digest,
        "findings": [f.what for f in found.findings],
        "invariants": found.invariants,
        "changes_proposed": len(plan.changes),
        "outcome": "healthy" if found.healthy else "found",
    }


async def _settled(rb: Runbook, rt: Runtime) -> Diagnosis:
    """The state after an apply once its asynchronous effects have landed: a refund's
    webhook updates the service's payment a moment later, a flag reaches every worker
    within its cache TTL. Diagnosed again until healthy, for at most ``SETTLE_S``."""
    deadline = time.monotonic() + SETTLE_S
    while True:
        after = await rb.diagnose(rt)
        if after.healthy or time.monotonic() >= deadline:
            return after
        await asyncio.sleep(1.0)


async def apply(
    rb: Runbook,
    rt: Runtime,
    approved: Plan,
    *,
    caps: Caps,
    confirm: Callable[[Plan], bool],
    store: Store,
    who: str,
) -> Applied:
    """Raises ``Refused`` before any change; otherwise every change is attempted and the
    outcome of each is recorded (one failed refund must not hide the others)."""
    if rb.apply is None:
        raise Refused(f"{rb.name} has no automated resolution; follow its notes")
    if approved.runbook != rb.name:
        raise Refused(f"plan {approved.digest} belongs to {approved.runbook}, not {rb.name}")
    rt.scope = dict(approved.scope)  # re-diagnose what was planned, not today's options
    before, fresh = await diagnose(rb, rt, approved.incident)
    record: dict[str, Any] = {
        "at": _now(),
        "who": who,
        "mode": "apply",
        "runbook": rb.name,
        "incident": approved.incident,
        "target": approved.target,
        "plan": approved.digest,
    }
    try:
        if fresh.digest != approved.digest:
            raise Refused(
                "the state changed since the plan was made (drift): diagnose again",
                drift(approved, fresh),
            )
        breaches = caps.breaches(approved)
        if breaches:
            raise Refused("the plan exceeds a blast-radius cap; nothing was applied", breaches)
        if approved.changes and not confirm(approved):
            raise Refused("not confirmed; nothing was applied")
    except Refused as refused:
        store.audit(
            record | {"outcome": "refused", "reason": str(refused), "details": refused.details}
        )
        raise
    outcomes = []
    for change in approved.changes:
        try:
            outcomes.append(Outcome(change, True, await rb.apply(rt, change, approved.incident)))
        except RunbookError as error:
            outcomes.append(Outcome(change, False, str(error)))
    after = await _settled(rb, rt)
    result = Applied(approved, before.invariants, after, outcomes)
    store.audit(
        record
        | {
            "outcome": "verified" if result.verified else "incomplete",
            "changes": [o.to_json() for o in outcomes],
            "invariants_before": before.invariants,
            "invariants_after": after.invariants,
        }
    )
    return result
