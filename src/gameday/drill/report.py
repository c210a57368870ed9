"""``report.md``: the journal as a page for a pull request or a wiki (the HTML report,
charts and the gate build on the same journal)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import jinja2

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


def render_markdown(journal: dict[str, Any]) -> str:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("gameday.drill", "templates"),
        autoescape=False,  # noqa: S701 - Markdown, not HTML; cells are escaped by `cell`
        trim_blocks=False,
        keep_trailing_newline=True,
        undefined=jinja2.ChainableUndefined,
    )
    env.filters["fmt"] = _fmt
    env.filters["cell"] = _cell
    env.globals["key_figures"] = key_figures
    return env.get_template("report.md.j2").render(j=journal)


def write_markdown(journal: dict[str, Any], path: Path) -> None:
    path.write_text(render_markdown(journal))
