"""Part 7.4: which scenarios a change must rerun, and the observability validation.

"If DB or payment path changed, rerun scenarios 1-4 minimum; if cache/auth/network
handling changed, rerun 5-8 minimum; any P0/P1 fix requires the targeted scenario plus
one adjacent scenario; re-test includes alerts and dashboards."
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gameday.gate.journal import Journal

AREAS: dict[str, tuple[int, ...]] = {
    "payment": (1, 2, 3, 4),
    "db": (1, 2, 3, 4),
    "cache": (5, 6, 7, 8),
    "auth": (5, 6, 7, 8),
    "network": (5, 6, 7, 8),
}
ALL_IDS = tuple(range(1, 9))


class PlanError(ValueError):
    pass


@dataclass
class Plan:
    scenarios: list[int]
    why: dict[int, list[str]] = field(default_factory=dict)
    observability: list[str] = field(default_factory=list)

    @property
    def command(self) -> str:
        return "gameday drill " + " ".join(f"-s {i}" for i in self.scenarios)


def parse_areas(text: str) -> list[str]:
    areas = [a.strip().lower() for a in text.split(",") if a.strip()]
    unknown = [a for a in areas if a not in AREAS]
    if unknown or not areas:
        raise PlanError(
            f"unknown area(s) {', '.join(unknown) or '(none given)'}: "
            f"choose from {', '.join(AREAS)} (comma-separated)"
        )
    return areas


def retest_plan(areas: list[str], journal: Journal | None = None) -> Plan:
    why: dict[int, list[str]] = {}
    for area in areas:
        for sid in AREAS[area]:
            why.setdefault(sid, []).append(f"{area} changed")
    if journal is not None:
        for s in journal.scenarios:
            severe = [c for c in s.criteria if c.verdict == "fail" and c.severity in ("P0", "P1")]
            if not severe:
                continue
            why.setdefault(s.id, []).append("P0/P1 defect found here")
            adjacent = s.id + 1 if s.id + 1 in ALL_IDS else s.id - 1
            why.setdefault(adjacent, []).append(f"adjacent to scenario {s.id}")
    observability = [
        "gameday alerts check (the rules load and each fires on its fault)",
        "every rerun scenario's expected alerts must page (the drill checks it)",
        "dashboards: request rate, error rate, p95, DB pool and cache hit ratio move "
        "during each fault",
    ]
    return Plan(sorted(why), why, observability)
