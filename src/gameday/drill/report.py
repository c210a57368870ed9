"""The key figures of a scenario for the drill's summary table (the full report is
``gameday.report``)."""

from __future__ import annotations

import math
from typing import Any

_KEYS = (
    "succeeded_intents",
    "winners",
    "accepted",
    "recovery_s",
    "p95_s",
    "error_rate",
    "answer_401",
    "amplification",
)


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def key_figures(scenario: dict[str, Any]) -> str:
    """A line for the summary table: what failed, else the criteria's measured figures and
    the time to detect of the alerts it expected."""
    criteria = scenario.get("criteria", [])
    failed = [c["text"] for c in criteria if c["verdict"] == "fail"]
    if failed:
        return _cell("failed: " + "; ".join(failed[:2]) + ("; …" if len(failed) > 2 else ""))
    shown = [
        f"{'.'.join(c['measure'].split('.')[-2:])} {_fmt(c['measured'])}"
        for c in criteria
        if isinstance(c.get("measured"), int | float) and not c["measure"].startswith("checks.")
    ][:3]
    shown += [f"{a['name']} TTD {a['ttd_s']} s" for a in scenario.get("alerts", [])
              if a.get("expected") and a.get("ttd_s") is not None][:1]  # fmt: skip
    return _cell(", ".join(shown)) or "—"
