"""Part 6.4: risk score = impact (1-5) * likelihood (1-5) * detectability gap (1-3), with
its bands, for every failed or weak area; and the accepted-risks file of Part 6.2.

Defaults come per scenario kind and per gate row, and a team overrides them in a small
YAML file (``--risk-config``): the playbook leaves the numbers to judgement, the tool only
makes the judgement written down and repeatable. Both files are validated with the field
named in the error, since a typo in an owner or a date must not pass silently.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import msgspec
import yaml

from gameday.gate.journal import Scenario
from gameday.gate.rows import Row

_T = TypeVar("_T")
Band = Literal["low", "medium", "high"]
Level = Annotated[int, msgspec.Meta(ge=1, le=5)]
Gap = Annotated[int, msgspec.Meta(ge=1, le=3)]


class InputError(ValueError):
    """A risk configuration or accepted-risks file the gate cannot use (names the field)."""


class Weights(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    impact: Level | None = None
    likelihood: Level | None = None
    detectability_gap: Gap | None = None
    effort: Level | None = None
    """Fix effort for Part 7.3's priority (subtracted)."""


class RiskConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    kinds: dict[str, Weights] = {}
    rows: dict[str, Weights] = {}


KIND_DEFAULTS: dict[str, tuple[int, int]] = {
    "payment": (5, 3),
    "booking": (5, 3),
    "webhook": (4, 3),
    "db": (4, 3),
    "cache": (3, 3),
    "auth": (3, 3),
    "network": (4, 2),
}
"""Impact, likelihood per scenario kind: money and inventory first; an outage of a
dependency is likelier than a network partition of one instance."""
ROW_DEFAULTS: dict[str, tuple[int, int, int]] = {
    "duplicate_charges": (5, 4, 2),
    "duplicate_bookings": (5, 4, 2),
    "mandatory_pass_rate": (5, 3, 2),
    "overall_pass_rate": (3, 3, 2),
    "api_5xx_steady": (4, 3, 1),
    "p95_critical": (3, 3, 1),
    "webhook_success": (4, 3, 2),
    "db_pool": (4, 2, 1),
    "redis_survivability": (4, 3, 2),
    "mttr": (4, 2, 2),
}
"""Impact, likelihood, detectability gap per gate row (the 5xx, latency and pool rows have
alerts of their own, hence a small gap)."""
DEFAULT_EFFORT = 3


def band(score: int) -> Band:
    return "low" if score <= 15 else "medium" if score <= 30 else "high"


@dataclass
class Risk:
    id: str
    area: str
    why: str
    impact: int
    likelihood: int
    detectability_gap: int
    status: Literal["open", "accepted"] = "open"
    acceptance: dict[str, Any] | None = None

    @property
    def score(self) -> int:
        return self.impact * self.likelihood * self.detectability_gap

    @property
    def band(self) -> Band:
        return band(self.score)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "area": self.area,
            "why": self.why,
            "impact": self.impact,
            "likelihood": self.likelihood,
            "detectability_gap": self.detectability_gap,
            "score": self.score,
            "band": self.band,
            "status": self.status,
            "acceptance": self.acceptance,
        }


def _apply(w: Weights | None, impact: int, likelihood: int, gap: int) -> tuple[int, int, int]:
    if w is None:
        return impact, likelihood, gap
    return (w.impact or impact, w.likelihood or likelihood, w.detectability_gap or gap)


def detectability_gap(s: Scenario) -> int:
    """1 when an expected alert paged; 3 when one stayed silent; 2 when the scenario has no
    alert of its own (only the drill's checkers saw the failure)."""
    alerts = [c for c in s.criteria if c.measure.startswith("alerts.")]
    if any(c.verdict == "fail" for c in alerts):
        return 3
    return 1 if alerts else 2


def kind_weights(kind: str, config: RiskConfig) -> tuple[int, int]:
    impact, likelihood = KIND_DEFAULTS.get(kind, (3, 3))
    w = config.kinds.get(kind)
    if w is not None:
        impact, likelihood = w.impact or impact, w.likelihood or likelihood
    return impact, likelihood


def score(scenarios: list[Scenario], rows: list[Row], config: RiskConfig) -> list[Risk]:
    risks = []
    for s in scenarios:
        if s.verdict == "pass":
            continue
        failed = [c.text for c in s.criteria if c.verdict != "pass"] or s.errors or [s.verdict]
        impact, likelihood = kind_weights(s.kind, config)
        gap = detectability_gap(s)
        w = config.kinds.get(s.kind)
        if w is not None and w.detectability_gap:
            gap = w.detectability_gap
        risks.append(
            Risk(
                f"scenario.{s.id}",
                f"{s.id}. {s.title}",
                f"{s.verdict}: " + "; ".join(failed[:4]),
                impact,
                likelihood,
                gap,
            )
        )
    for row in rows:
        if row.verdict == "pass":
            continue
        impact, likelihood, gap = ROW_DEFAULTS.get(row.id, (3, 3, 2))
        if row.verdict == "unknown":
            likelihood, gap = 2, 3  # unmeasured: nothing says it is fine, nothing would page
        impact, likelihood, gap = _apply(config.rows.get(row.id), impact, likelihood, gap)
        why = f"{row.verdict}: measured {row.measured} (threshold {row.threshold})"
        risks.append(Risk(f"row.{row.id}", row.category, why, impact, likelihood, gap))
    return risks


# -- files ----------------------------------------------------------------------------------


class Acceptance(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    id: str
    mitigation: Annotated[str, msgspec.Meta(min_length=3)]
    owner: Annotated[str, msgspec.Meta(min_length=1)]
    due: dt.date
    rollback_ready: bool


class AcceptedRisks(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    accepted: list[Acceptance]


class _DatesAsText(yaml.SafeLoader):
    """Safe loading, dates left as text: converted with the field's name in any error
    (PyYAML's own date parsing raises a bare "month must be in 1..12" for 2026-13-01)."""


_DatesAsText.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _load_yaml(path: Path, what: str) -> Any:
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_DatesAsText)  # noqa: S506
    except FileNotFoundError:
        raise InputError(f"{what} {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{what} {path}: cannot be read ({error})") from None
    except yaml.YAMLError as error:
        raise InputError(f"{what} {path}: not valid YAML ({error})") from None


def _convert(data: Any, kind: type[_T], path: Path, what: str) -> _T:
    try:
        return msgspec.convert(data, kind, strict=False)
    except msgspec.ValidationError as error:
        raise InputError(f"{what} {path}: {error}") from None


def load_risk_config(path: Path | None) -> RiskConfig:
    if path is None:
        return RiskConfig()
    data = _load_yaml(path, "risk config")
    return _convert({} if data is None else data, RiskConfig, path, "risk config")


def load_accepted(path: Path | None) -> list[Acceptance]:
    if path is None:
        return []
    data = _load_yaml(path, "accepted risks")
    found = _convert(data, AcceptedRisks, path, "accepted risks").accepted
    seen: set[str] = set()
    for i, a in enumerate(found):
        if a.id in seen:
            raise InputError(
                f"accepted risks {path}: duplicate id {a.id!r} - at `$.accepted[{i}].id`"
            )
        seen.add(a.id)
    return found


def accept(
    risks: list[Risk], acceptances: list[Acceptance], today: dt.date, blocking: set[str]
) -> list[str]:
    """Marks the medium and low risks a valid acceptance covers; returns why each other
    acceptance was refused (a high risk or a blocker can never be accepted)."""
    by_id = {r.id: r for r in risks}
    refused = []
    for a in acceptances:
        risk = by_id.get(a.id)
        if risk is None:
            refused.append(f"{a.id}: no such open risk in this drill (stale acceptance?)")
        elif a.id in blocking:
            refused.append(f"{a.id}: a blocker cannot be accepted")
        elif risk.band == "high":
            refused.append(f"{a.id}: a high risk (score {risk.score}) cannot be accepted")
        elif not a.rollback_ready:
            refused.append(f"{a.id}: rollback is not ready")
        elif a.due < today:
            refused.append(f"{a.id}: its due date {a.due.isoformat()} has passed")
        else:
            risk.status = "accepted"
            risk.acceptance = msgspec.to_builtins(a)
    return refused
