"""The key figures of a scenario for the drill's summary table (the full report is
``gameday.report``)."""

from __future__ import annotations

from typing import Any

from gameday.report.build import cell, fmt


def key_figures(scenario: dict[str, Any]) -> str:
    """A line for the summary table: what failed, else the criteria's measured figures and
    the time to detect of the alerts it expected."""
    criteria = scenario.get("criteria", [])
    failed = [c["text"] for c in criteria if c["verdict"] == "fail"]
    if failed:
        return cell("failed: " + "; ".join(failed[:2]) + ("; …" if len(failed) > 2 else ""))
    shown = [
        f"{'.'.join(c['measure'].split('.')[-2:])} {fmt(c['measured'])}"
        for c in criteria
        if isinstance(c.get("measured"), int | float) and not c["measure"].startswith("checks.")
    ][:3]
    shown += [f"{a['name']} TTD {a['ttd_s']} s" for a in scenario.get("alerts", [])
              if a.get("expected") and a.get("ttd_s") is not None][:1]  # fmt: skip
    return cell(", ".join(shown)) or "—"
