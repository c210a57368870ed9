"""Alerts as evidence of a scenario: which fired, how long after the injection (time to
detect), which were expected, and the criterion "the expected alert paged".

An expected alert that stays silent fails its scenario (the gate treats a silent critical
alert as a blocker); one that fires when none was expected is reported, not failed — a
page during a tolerated fault is noise the team should see, not a broken invariant.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from gameday.drill.criteria import Judged
from gameday.drill.scenario import Criterion
from gameday.verdict import Verdict


def annotate(
    events: list[dict[str, Any]], expected: tuple[str, ...], injected_at: datetime | None,
    fired_before: dict[str, int],
) -> list[dict[str, Any]]:  # fmt: skip
    """``ttd_s`` on firing events (seconds from the first injection to the notification),
    ``expected``, and ``fired_in`` for a resolution of an alert an earlier scenario raised."""
    for event in events:
        if injected_at is not None and event["status"] == "firing":
            received = datetime.fromisoformat(event["received_at"])
            event["ttd_s"] = round((received - injected_at).total_seconds(), 2)
        event["expected"] = event["name"] in expected
        if event["status"] == "resolved" and event["name"] in fired_before:
            event["fired_in"] = fired_before[event["name"]]
    return events


def missing(events: list[dict[str, Any]], expected: tuple[str, ...]) -> set[str]:
    return set(expected) - {e["name"] for e in events if e["status"] == "firing"}


def alert_criteria(
    expected: tuple[str, ...], events: list[dict[str, Any]], *, injected: bool
) -> list[Judged]:
    judged = []
    for name in expected:
        fired = [e for e in events if e["name"] == name and e["status"] == "firing"]
        crit = Criterion(f"alert {name} pages", f"alerts.{name}", expect="fired", severity="P0")
        if not injected:
            judged.append(Judged(crit, Verdict.UNKNOWN, None, "its fault was not injected"))
        elif fired:
            ttd = fired[0].get("ttd_s")
            judged.append(Judged(crit, Verdict.PASS, "fired", f"time to detect {ttd} s"))
        else:
            judged.append(Judged(crit, Verdict.FAIL, "silent", "expected alert did not fire"))
    return judged
