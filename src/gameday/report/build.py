"""The report's three files from one journal and one gate result: ``index.html`` (self-
contained, charts inline), ``report.md`` (the same content for a pull request or a wiki)
and ``junit.xml`` (one test case per scenario and per gate row, so CI shows it natively).

Every figure shown comes from the journal; what was not measured shows as a dash, never as
a made-up zero.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2

from gameday.gate.decide import GateResult
from gameday.gate.journal import Journal
from gameday.report.charts import line_chart
from gameday.report.defects import Defect, defects
from gameday.report.plan import AREAS, retest_plan

HTML, MARKDOWN, JUNIT = "index.html", "report.md", "junit.xml"

METRIC_ROWS = (
    ("p95 latency (s)", "latency_p95_s"),
    ("Error rate", "error_ratio"),
    ("Availability", "availability"),
    ("Cache hit ratio", "cache_hit_ratio"),
    ("DB pool usage", "db_pool_utilisation"),
)
"""Playbook 003's metrics table (its Kafka lag has no counterpart in a booking service)."""


def fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _snapshot_value(snapshot: Any, key: str) -> Any:
    if not isinstance(snapshot, dict):
        return None
    return (snapshot.get("values") or {}).get(key)


def _alert_times(j: Journal) -> list[tuple[float, str, int | None]]:
    """Firing notifications on the drill's clock (seconds since it started)."""
    try:
        start = datetime.fromisoformat(j.started_at)
    except ValueError:
        return []
    found = []
    for a in j.alerts:
        if a.status != "firing":
            continue
        try:
            at = (datetime.fromisoformat(a.received_at) - start).total_seconds()
        except (ValueError, TypeError):
            continue
        found.append((at, a.name, a.scenario))
    return found


def scenario_view(j: Journal, raw: dict[str, Any]) -> list[dict[str, Any]]:
    """Per scenario: its charts, the pre/during/post metrics table, TTD and TTR."""
    series = j.series
    points = series.points if series is not None else []
    alerts = _alert_times(j)
    views = []
    for s in j.scenarios:
        t0, t1 = s.started_t, max(s.ended_t, s.started_t + 1)
        shaded = [(f.injected_t, f.healed_t) for f in s.faults]
        marks = [(t, name) for t, name, sid in alerts if sid == s.id]

        charts = [
            line_chart(title, [(float(p[0] or 0), p[column]) for p in points], t0=t0, t1=t1,
                       unit=unit, scale=scale, shaded=shaded, marks=marks)
            for title, column, unit, scale in (
                ("requests/s", 1, "", 1.0),
                ("error rate (5xx + no answer)", 2, "%", 100.0),
                ("p95 latency", 3, " ms", 1.0),
            )
        ] if points else []  # fmt: skip
        before, after = s.metrics.get("before"), s.metrics.get("after")
        during = s.faults[0].metrics_during if s.faults else None
        table = [
            (label, _snapshot_value(before, key), _snapshot_value(during, key),
             _snapshot_value(after, key))
            for label, key in METRIC_ROWS
        ]  # fmt: skip
        ttd = [a.ttd_s for a in s.alerts if a.status == "firing" and a.expected and a.ttd_s]
        ttr = [f.recovery_s for f in s.faults if f.recovery_s is not None]
        views.append({
            "s": s, "charts": charts, "metrics": table,
            "ttd": min(ttd) if ttd else None, "ttr": max(ttr) if ttr else None,
        })  # fmt: skip
    return views


def reconciliation(j: Journal) -> list[dict[str, Any]]:
    """The provider-ledger side: the duplicate-charge check's figures per scenario and
    what the reconcile rollback did."""
    found = []
    for s in j.scenarios:
        for c in s.checks:
            if c.name == "no_duplicate_charge":
                rec = next((r for r in s.rollback if r.action == "reconcile"), None)
                found.append({"scenario": s.id, "verdict": c.verdict, "figures": c.figures,
                              "reconcile": rec.detail if rec else ""})  # fmt: skip
    return found


def context(j: Journal, raw: dict[str, Any], gate: GateResult) -> dict[str, Any]:
    found: list[Defect] = defects(j)
    changed = sorted({area for area, ids in AREAS.items()
                      for d in found if d.scenario in ids})  # fmt: skip
    plan = retest_plan(changed, j) if changed else None
    return {
        "j": raw, "journal": j, "gate": gate, "decision": gate.decision.value,
        "scenarios": scenario_view(j, raw), "defects": found, "plan": plan,
        "reconciliation": reconciliation(j),
    }  # fmt: skip


def _env(autoescape: bool) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("gameday.report", "templates"),
        autoescape=autoescape,  # noqa: S701 - off only for Markdown, whose cells `cell` escapes
        keep_trailing_newline=True,
        undefined=jinja2.ChainableUndefined,
    )
    env.filters["fmt"] = fmt
    env.filters["cell"] = cell
    return env


def render_html(ctx: dict[str, Any]) -> str:
    return _env(True).get_template("report.html.j2").render(**ctx)


def render_markdown(ctx: dict[str, Any]) -> str:
    return _env(False).get_template("report.md.j2").render(**ctx)


def render_junit(j: Journal, gate: GateResult) -> str:
    suites = ET.Element("testsuites", name="gameday", tests="0", failures="0")
    scen = ET.SubElement(suites, "testsuite", name="gameday.scenarios")
    for s in j.scenarios:
        case = ET.SubElement(
            scen, "testcase", classname="gameday.scenarios", name=f"{s.id}. {s.title}",
            time=f"{s.ended_t - s.started_t:.3f}",
        )  # fmt: skip
        failed = [c for c in s.criteria if c.verdict != "pass"]
        text = "\n".join(f"[{c.severity}] {c.text}: {c.verdict}, measured {c.measured} "
                         f"(threshold {c.threshold}) {c.why}" for c in failed)  # fmt: skip
        if s.verdict == "fail":
            ET.SubElement(case, "failure", message=f"scenario {s.id} failed").text = text
        elif s.verdict == "unknown":
            ET.SubElement(case, "error", message=f"scenario {s.id} inconclusive").text = (
                text + "\n" + "\n".join(s.errors)
            )
    rows = ET.SubElement(suites, "testsuite", name="gameday.gate")
    for r in gate.rows:
        case = ET.SubElement(rows, "testcase", classname="gameday.gate", name=r.category)
        message = f"measured {r.measured}, threshold {r.threshold}"
        if r.verdict == "fail":
            ET.SubElement(case, "failure", message=message).text = r.detail
        elif r.verdict == "unknown":
            ET.SubElement(case, "skipped", message=f"not measured: {r.detail}")
        elif r.verdict == "warn":
            ET.SubElement(case, "system-out").text = f"weak: {message}; {r.detail}"
    decision = ET.SubElement(rows, "testcase", classname="gameday.gate", name="Go/No-Go decision")
    if gate.decision.value != "GO":
        ET.SubElement(decision, "failure", message=gate.decision.value).text = "\n".join(
            gate.reasons
        )
    total = failures = errors = skipped = 0
    for suite in (scen, rows):
        cases = suite.findall("testcase")
        f = sum(1 for c in cases if c.find("failure") is not None)
        e = sum(1 for c in cases if c.find("error") is not None)
        k = sum(1 for c in cases if c.find("skipped") is not None)
        suite.set("tests", str(len(cases)))
        suite.set("failures", str(f))
        suite.set("errors", str(e))
        suite.set("skipped", str(k))
        total, failures, errors, skipped = total + len(cases), failures + f, errors + e, skipped + k
    suites.set("tests", str(total))
    suites.set("failures", str(failures))
    suites.set("errors", str(errors))
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def write_reports(j: Journal, raw: dict[str, Any], gate: GateResult, out: Path) -> list[Path]:
    """Each file written whole then renamed, so a reader never sees half a report."""
    out.mkdir(parents=True, exist_ok=True)
    ctx = context(j, raw, gate)
    written = []
    for name, body in (
        (HTML, render_html(ctx)),
        (MARKDOWN, render_markdown(ctx)),
        (JUNIT, render_junit(j, gate)),
    ):
        path = out / name
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(body, encoding="utf-8")
        tmp.replace(path)
        written.append(path)
    return written
