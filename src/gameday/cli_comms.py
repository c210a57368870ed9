"""``gameday comms`` and ``gameday review``: messages and the post-incident review, filled
from a drill's journal and/or the runbooks' audit trail, never from guesses.

Exit codes: 0 written, 2 bad input, 5 refused by the evidence (e.g. "resolved" while an
invariant still fails).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from gameday.comms.facts import Facts, FactsError, gather
from gameday.comms.render import TEMPLATES, PhaseRefused, render
from gameday.comms.render import review as render_review

EXIT_BAD_INPUT, EXIT_REFUSED = 2, 5
err = Console(stderr=True)

FromOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--from",
        help="Evidence: a drill's journal.json (or its directory) and/or a runbooks' "
        "audit.jsonl (or gameday-runbooks/). Repeat to combine.",
        exists=True,
    ),
]
IncidentOpt = Annotated[str | None, typer.Option(help="Only this incident's runbook records.")]


def _sources(paths: list[Path]) -> tuple[Path | None, Path | None]:
    journal = audit = None
    for path in paths:
        if path.is_dir():
            if (path / "audit.jsonl").exists():
                audit = path / "audit.jsonl"
            elif (path / "journal.json").exists():
                journal = path / "journal.json"
            else:
                raise FactsError(f"{path}: holds neither journal.json nor audit.jsonl")
        elif path.suffix == ".jsonl":
            audit = path
        else:
            journal = path
    return journal, audit


def _facts(paths: list[Path] | None, incident: str | None) -> Facts:
    if not paths:
        raise typer.BadParameter("give the evidence with --from", param_hint="--from")
    try:
        journal, audit = _sources(paths)
        return gather(journal, audit, incident)
    except FactsError as error:
        err.print(f"[bold red]cannot read the evidence:[/] {error}")
        raise typer.Exit(EXIT_BAD_INPUT) from None


def comms(
    template: Annotated[str, typer.Argument(help=f"One of: {', '.join(TEMPLATES)}.")],
    sources: FromOpt = None,
    incident: IncidentOpt = None,
    out: Annotated[Path | None, typer.Option(help="Write here instead of printing.")] = None,
) -> None:
    """Render an incident message (internal, status page, customer) from the evidence.

    The figures (counts, amounts, time range, ids) are the measured ones; anything not
    measured shows as [UNKNOWN: field] for a human. The status-page phase follows the
    checks: "resolved" is refused while an invariant fails."""
    if template not in TEMPLATES:
        raise typer.BadParameter(f"choose from {', '.join(TEMPLATES)}", param_hint="TEMPLATE")
    facts = _facts(sources, incident)
    try:
        text = render(template, facts)
    except PhaseRefused as refused:
        err.print(f"[bold red]refused:[/] {refused}")
        raise typer.Exit(EXIT_REFUSED) from None
    _emit(text, out)


def review(
    sources: FromOpt = None,
    incident: IncidentOpt = None,
    out: Annotated[Path | None, typer.Option(help="Write here instead of printing.")] = None,
    today: Annotated[
        str | None, typer.Option(help="Date the action items' due dates count from (YYYY-MM-DD).")
    ] = None,
) -> None:
    """Write the post-incident review (Markdown) from the evidence.

    Summary, impact figures, times derived from events (impact start, detection,
    mitigation, resolution; time to detect and resolve), the timeline, root cause and
    resolution left for a human, and action items from the failed criteria with severity,
    priority and a due date (P0 +2 days, P1 +7 days)."""
    facts = _facts(sources, incident)
    try:
        day = dt.date.fromisoformat(today) if today else dt.datetime.now(dt.UTC).date()
    except ValueError:
        raise typer.BadParameter("a date as YYYY-MM-DD", param_hint="--today") from None
    _emit(render_review(facts, facts.journal, day), out)


def _emit(text: str, out: Path | None) -> None:
    if out is None:
        typer.echo(text, nl=False)
        return
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as error:
        err.print(f"[bold red]cannot write {out}:[/] {error.strerror}")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    err.print(f"wrote {out}")
