"""The part of a drill journal the gate and the report read, validated at the edge.

The journal is JSON a person may have edited, copied from CI or cut short by an abort, so
it is converted once into typed structs: a wrong or missing field is refused with its path
(``$.scenarios[2].faults[0].injected_t``), never met later as a ``KeyError``. Fields the
gate does not read are ignored, so newer journals still load.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import msgspec

Verdict = Literal["pass", "fail", "unknown"]


class JournalError(ValueError):
    """The file is not a drill journal the gate can read; the message names the field."""


class Base(msgspec.Struct, forbid_unknown_fields=False):
    pass


class Criterion(Base):
    text: str
    measure: str
    verdict: Verdict
    threshold: str = ""
    measured: Any = None
    severity: Literal["P0", "P1", "P2"] = "P1"
    why: str = ""


class Check(Base):
    name: str
    verdict: Verdict
    severity: str | None = None
    summary: str = ""
    evidence: list[dict[str, Any]] = []
    omitted: int = 0
    figures: dict[str, Any] = {}


class Fault(Base):
    label: str
    kind: str
    target: str
    injected_t: float
    healed_t: float
    recovery_s: float | None = None
    recovery_probe: str | None = ""
    """None: the scenario measures no recovery for this fault ("" in older journals)."""
    restarts: int | None = None
    metrics_during: dict[str, Any] = {}


class Alert(Base):
    name: str
    status: Literal["firing", "resolved"]
    labels: dict[str, str] = {}
    received_at: str = ""
    ttd_s: float | None = None
    expected: bool = False
    scenario: int | None = None


class Rollback(Base):
    action: str
    ok: bool | None = None
    detail: str = ""


class Scenario(Base):
    id: int
    title: str
    verdict: Verdict
    slug: str = ""
    kind: str = ""
    mandatory: bool = True
    started_t: float = 0.0
    ended_t: float = 0.0
    criteria: list[Criterion] = []
    checks: list[Check] = []
    faults: list[Fault] = []
    alerts: list[Alert] = []
    measures: dict[str, Any] = {}
    metrics: dict[str, Any] = {}
    errors: list[str] = []
    rollback: list[Rollback] = []


class Steady(Base):
    requests: int
    status_5xx: int = 0
    no_answer: int = 0
    error_rate: float | None = None
    critical_p95_s: dict[str, float | None] = {}
    excluded_windows: list[list[float]] = []


class Webhooks(Base):
    events: int | None = None
    delivered: int = 0
    pending: int = 0
    success_rate: float | None = None
    window_s: float | None = None
    error: str = ""


class DbPool(Base):
    steady: float | None = None
    peak: float | None = None
    error: str = ""


class Series(Base):
    bucket_s: float
    points: list[list[float | None]] = []


class Event(Base):
    t: float
    kind: str
    what: str
    scenario: Any = None


class Journal(Base):
    journal_version: Literal[1]
    status: str
    abort_reason: str | None = None
    started_at: str = ""
    finished_at: str | None = None
    options: dict[str, Any] = {}
    target: dict[str, Any] = {}
    preflight: list[dict[str, Any]] = []
    baseline: dict[str, Any] = {}
    scenarios: list[Scenario] = []
    timeline: list[Event] = []
    alerts: list[Alert] = []
    steady: Steady | None = None
    webhooks: Webhooks | None = None
    db_pool: DbPool | None = None
    series: Series | None = None


def parse_journal(data: Any, where: str = "journal") -> Journal:
    if not isinstance(data, dict) or data.get("journal_version") != 1:
        raise JournalError(f"{where}: not a gameday journal (journal_version 1 expected)")
    try:
        return msgspec.convert(data, Journal)
    except msgspec.ValidationError as error:
        raise JournalError(f"{where}: {error}") from None


def read_journal(path: Path) -> tuple[Journal, dict[str, Any]]:
    """The typed journal and the raw document (the report shows fields the gate ignores)."""
    try:
        raw = msgspec.json.decode(path.read_bytes())
    except FileNotFoundError:
        raise JournalError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise JournalError(f"{path}: a directory; give the journal.json inside it") from None
    except msgspec.DecodeError as error:
        raise JournalError(f"{path}: not valid JSON ({error})") from None
    return parse_journal(raw, str(path)), raw
