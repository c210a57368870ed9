"""``gameday gate``, ``gameday report`` and ``gameday plan``: the decision, the report and
the re-test plan from a drill's journal (the drill itself runs the first two at its end).

Exit codes, shared by ``gameday drill``: 0 GO, 1 NO-GO, 2 bad input (a malformed journal,
accepted-risks or risk-config file), 3 the drill could not run (or its journal says it did
not complete), 4 CONDITIONAL GO.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from gameday.gate import (
    GateResult,
    InputError,
    Journal,
    JournalError,
    decide,
    load_accepted,
    load_risk_config,
    read_journal,
)
from gameday.report import write_reports
from gameday.report.plan import PlanError, parse_areas, retest_plan

EXIT_BAD_INPUT, EXIT_CANNOT_RUN = 2, 3
console = Console()
_STYLE = {"pass": "green", "warn": "yellow", "fail": "bold red", "unknown": "magenta"}
_DECISION_STYLE = {"GO": "bold white on green", "CONDITIONAL GO": "bold black on yellow",
                   "NO-GO": "bold white on red"}  # fmt: skip

JournalArg = Annotated[
    Path, typer.Argument(help="A drill's journal.json (or the report directory holding it).")
]
AcceptedOpt = Annotated[
    Path | None,
    typer.Option(
        "--accepted-risks",
        help="YAML: accepted: [{id, mitigation, owner, due: YYYY-MM-DD, rollback_ready}] — "
        "turns medium risks into accepted ones (never a high risk or a blocker).",
    ),
]
RiskOpt = Annotated[
    Path | None,
    typer.Option(
        "--risk-config",
        help="YAML overriding risk weights: kinds: {payment: {impact, likelihood, "
        "detectability_gap, effort}}, rows: {p95_critical: {...}}.",
    ),
]


def _journal_path(path: Path) -> Path:
    return path / "journal.json" if path.is_dir() else path


def evaluate(
    journal: Journal, accepted: Path | None, risk_config: Path | None, today: dt.date | None = None
) -> GateResult:
    """Raises ``InputError`` for a bad accepted-risks or risk-config file."""
    return decide(journal, config=load_risk_config(risk_config),
                  acceptances=load_accepted(accepted), today=today)  # fmt: skip


def print_gate(result: GateResult) -> None:
    table = Table(title="Go/No-Go gate (playbook Part 6)")
    for column in ("category", "threshold", "measured", "verdict", "blocker"):
        table.add_column(column)
    for r in result.rows:
        blocker = "[bold red]YES[/]" if r.blocker else "no"
        verdict = f"[{_STYLE[r.verdict]}]{r.verdict}[/]"
        table.add_row(r.category, r.threshold, r.measured, verdict, blocker)
    console.print(table)
    for b in result.blockers:
        console.print(f"[bold red]blocker:[/] {b.text} [dim]{b.evidence}[/]")
    for risk in result.risks:
        if risk.band != "low" or risk.status == "accepted":
            console.print(
                f"risk {risk.id}: {risk.score} ({risk.band}, {risk.status}) [dim]{risk.why}[/]"
            )
    for why in result.refused:
        console.print(f"[yellow]acceptance refused:[/] {why}")
    decision = result.decision.value
    console.print(f"\n[{_DECISION_STYLE[decision]}]  DECISION: {decision}  [/]\n")


def _load(path: Path) -> tuple[Journal, dict[str, Any]]:
    try:
        return read_journal(_journal_path(path))
    except JournalError as error:
        console.print(f"[bold red]cannot read the journal:[/] {error}")
        raise typer.Exit(EXIT_BAD_INPUT) from None


def gate(
    journal: JournalArg,
    accepted_risks: AcceptedOpt = None,
    risk_config: RiskOpt = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the gate result as JSON instead of a table.")
    ] = False,
) -> None:
    """Decide GO / CONDITIONAL GO / NO-GO from a drill's journal (playbook Part 6).

    Evaluates every launch threshold of Part 6.1 from measured values, applies the blocker
    conditions of 6.3, scores each failed or weak area (impact x likelihood x
    detectability gap) and applies accepted risks. Exit codes: 0 GO, 1 NO-GO, 2 bad input,
    3 the drill did not complete, 4 CONDITIONAL GO.
    """
    typed, _raw = _load(journal)
    try:
        result = evaluate(typed, accepted_risks, risk_config)
    except InputError as error:
        console.print(f"[bold red]bad input:[/] {error}")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    if json_out:
        typer.echo(orjson.dumps(result.to_json(), option=orjson.OPT_INDENT_2).decode())
    else:
        print_gate(result)
    raise typer.Exit(EXIT_CANNOT_RUN if typed.status != "complete" else result.exit_code)


def report(
    journal: JournalArg,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Where to write index.html, report.md, junit.xml (default: beside the journal)."
        ),
    ] = None,
    accepted_risks: AcceptedOpt = None,
    risk_config: RiskOpt = None,
) -> None:
    """Write the drill report (index.html, report.md, junit.xml) from a journal.

    index.html is self-contained (charts inline), with the gate's decision on top.
    Exit code: the gate's (see `gate`)."""
    path = _journal_path(journal)
    typed, raw = _load(path)
    try:
        result = evaluate(typed, accepted_risks, risk_config)
    except InputError as error:
        console.print(f"[bold red]bad input:[/] {error}")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    raw["gate"] = result.to_json()
    try:
        written = write_reports(typed, raw, result, out or path.parent)
    except OSError as error:
        console.print(f"[bold red]cannot write the report:[/] {error}")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    for file in written:
        console.print(f"wrote {file}")
    console.print(
        f"decision: [{_DECISION_STYLE[result.decision.value]}] {result.decision.value} [/]"
    )
    raise typer.Exit(EXIT_CANNOT_RUN if typed.status != "complete" else result.exit_code)


def plan(
    changed: Annotated[
        str,
        typer.Option(help="What changed, comma-separated: payment, db, cache, auth, network."),
    ],
    journal: Annotated[
        Path | None,
        typer.Option(
            help="A drill's journal: adds each P0/P1 defect's scenario and an "
            "adjacent one (Part 7.4)."
        ),
    ] = None,
) -> None:
    """Print which scenarios a change must rerun (playbook Part 7.4).

    Also the observability validation; `gameday drill --changed ...` runs exactly those."""
    try:
        areas = parse_areas(changed)
    except PlanError as error:
        raise typer.BadParameter(str(error), param_hint="--changed") from None
    typed = _load(journal)[0] if journal is not None else None
    result = retest_plan(areas, typed)
    table = Table(title=f"Re-test plan for a change to {', '.join(areas)}")
    table.add_column("scenario")
    table.add_column("why")
    for sid in result.scenarios:
        table.add_row(str(sid), ", ".join(result.why[sid]))
    console.print(table)
    for item in result.observability:
        console.print(f"observability: {item}")
    console.print(f"\nrun: [bold]{result.command}[/]  (or: gameday drill --changed {changed})")
