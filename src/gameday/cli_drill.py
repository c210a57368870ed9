"""``gameday drill``: the eight mandatory scenarios end-to-end, with a live view, a summary
table, the Go/No-Go gate, ``journal.json``, ``history.jsonl`` and the report
(``index.html``, ``report.md``, ``junit.xml``).

Exit codes (the gate's): 0 GO, 1 NO-GO (a subset of the scenarios is NO-GO too: a launch
needs all eight), 2 bad input, 3 the drill could not run or was aborted (the journal says
why and what it had done until then), 4 CONDITIONAL GO.
"""

from __future__ import annotations

import asyncio
import logging
import random
import signal
from pathlib import Path
from typing import Annotated, Any

import structlog
import typer
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from gameday.cli_gate import AcceptedOpt, RiskOpt, evaluate, print_gate
from gameday.drill.engine import Drill, DrillAborted, DrillOptions
from gameday.drill.journal import save_document
from gameday.drill.report import key_figures
from gameday.drill.scenario import Scenario, ScenarioError, check_names, load_scenarios
from gameday.drill.target import Target, TargetError, load_profile
from gameday.faults import KINDS
from gameday.gate import InputError, JournalError, load_accepted, load_risk_config, parse_journal
from gameday.report import HTML, write_reports
from gameday.report.plan import PlanError, parse_areas, retest_plan
from gameday.stack.options import StackOptions
from gameday.stack.processes import StartError

EXIT_BAD_INPUT, EXIT_CANNOT_RUN = 2, 3
console = Console()
_STYLE = {"pass": "green", "fail": "bold red", "unknown": "yellow"}


def embedded_target(stack: Any) -> Target:
    return Target(
        name="bookings (embedded stack)",
        base_url=stack.ingress_url,
        instances=stack.worker_urls(),
        password=stack.secrets.gameday_password,
        admin_token=stack.secrets.admin_token,
        database_url=stack.database_url,
        provider_url=stack.provider_url,
        provider_key=stack.secrets.provider_key,
        webhook_secret=stack.webhook_secret,
        embedded=True,
    )


def select(scenarios: list[Scenario], wanted: list[int]) -> list[Scenario]:
    if not wanted:
        return scenarios
    known = {s.id for s in scenarios}
    unknown = sorted(set(wanted) - known)
    if unknown:
        raise ScenarioError(
            f"no scenario {unknown[0]}; there are {', '.join(map(str, sorted(known)))}"
        )
    return [s for s in scenarios if s.id in set(wanted)]


def drill(
    scenario: Annotated[
        list[int] | None,
        typer.Option("--scenario", "-s", help="Run only these scenarios (repeat the option)."),
    ] = None,
    pace: Annotated[
        str,
        typer.Option(
            help="fast: outages of seconds (embedded default); real: the playbook's minutes."
        ),
    ] = "fast",
    seed: Annotated[
        int | None,
        typer.Option(help="Makes the drill's choices reproducible (printed when omitted)."),
    ] = None,
    target: Annotated[
        Path | None,
        typer.Option(
            help="A target profile (YAML) describing your own system; "
            "default: the embedded reference stack.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    out: Annotated[
        Path, typer.Option(help="Where journal.json, history.jsonl and report.md go.")
    ] = Path("gameday-report"),
    workers: Annotated[
        int, typer.Option(min=2, max=8, help="bookings workers in the embedded stack.")
    ] = 2,
    unsafe_service: Annotated[
        bool,
        typer.Option(
            "--unsafe-service",
            help="Negative control: drill the service with every safeguard removed; "
            "scenarios 1-4 must fail.",
        ),
    ] = False,
    prometheus_url: Annotated[
        str,
        typer.Option(help="Your Prometheus (external targets): alerts and snapshots come from it."),
    ] = "",
    alertmanager_url: Annotated[
        str, typer.Option(help="Your Alertmanager (external targets).")
    ] = "",
    max_minutes: Annotated[
        float, typer.Option(min=1, max=600, help="Stop condition: abort (and heal) past this.")
    ] = 30.0,
    changed: Annotated[
        str,
        typer.Option(
            help="Re-test after a change (playbook 7.4): payment, db, cache, auth, network "
            "(comma-separated); runs exactly the scenarios `gameday plan` lists."
        ),
    ] = "",
    accepted_risks: AcceptedOpt = None,
    risk_config: RiskOpt = None,
) -> None:
    """Run the Game Day drill: pre-flight, a baseline, then the playbook's eight scenarios.

    Each scenario sets up, starts load, injects its fault, observes, heals, verifies
    recovery, checks the invariants (no duplicate charge, no double booking, convergence,
    single application of webhooks, no lost acknowledged write, deterministic retries) and
    judges its criteria. Then the Go/No-Go gate decides, and the report is written.
    Ctrl-C heals every fault and still writes the journal.
    Exit codes: 0 GO, 1 NO-GO (a subset run is NO-GO: a launch needs all eight), 2 bad
    input, 3 could not run or aborted, 4 CONDITIONAL GO.
    """
    if pace not in ("fast", "real"):
        raise typer.BadParameter("fast or real", param_hint="--pace")
    wanted = list(scenario or [])
    if changed:
        try:
            wanted += retest_plan(parse_areas(changed)).scenarios
        except PlanError as error:
            raise typer.BadParameter(str(error), param_hint="--changed") from None
    try:  # before the stack starts: a typo in these files must not cost a whole drill
        load_accepted(accepted_risks)
        load_risk_config(risk_config)
    except InputError as error:
        console.print(f"[bold red]bad input:[/] {error}")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    seed = seed if seed is not None else random.SystemRandom().randrange(1, 1_000_000)
    try:
        from gameday.drill.checks import CHECKS  # noqa: PLC0415
        from gameday.drill.probes import PROBES  # noqa: PLC0415 - registers the probes

        scenarios = select(load_scenarios(), sorted(set(wanted)))
        check_names(scenarios, PROBES, CHECKS, KINDS)
        profile = load_profile(target) if target is not None else None
    except (ScenarioError, TargetError) as error:
        console.print(f"[bold red]cannot run the drill:[/] {error}")
        raise typer.Exit(EXIT_CANNOT_RUN) from None
    # Info lines (each injection, each heal) would scroll the live view away; they are in
    # the journal's timeline.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    options = DrillOptions(
        pace="real" if pace == "real" else "fast", seed=seed, out=out, max_minutes=max_minutes
    )
    console.print(f"gameday drill: {len(scenarios)} scenario(s), pace {pace}, seed {seed}")
    try:
        journal = _run(
            scenarios, options, profile, workers, unsafe_service, prometheus_url, alertmanager_url
        )
    except StartError as error:
        console.print(f"[bold red]cannot run the drill:[/] {error}")
        raise typer.Exit(EXIT_CANNOT_RUN) from None
    code = _summary(journal, out, accepted_risks, risk_config)
    raise typer.Exit(code)


def _run(
    scenarios: list[Scenario],
    options: DrillOptions,
    profile: Target | None,
    workers: int,
    unsafe: bool,
    prometheus_url: str,
    alertmanager_url: str,
) -> dict[str, Any]:
    from gameday.stack.stack import Stack  # noqa: PLC0415 - heavy; not needed for --help

    live = _LiveView(console)
    if profile is not None:
        profile.prometheus_url = prometheus_url or profile.prometheus_url
        profile.alertmanager_url = alertmanager_url or profile.alertmanager_url
        return _drive(Drill(profile, options, status=live.update), scenarios, live)
    stack_options = StackOptions(workers=workers, pace=options.pace, unsafe=unsafe)
    _guard_signals()
    stack = Stack(stack_options)
    try:
        with console.status("starting the embedded stack") as status:
            stack.progress = lambda m: status.update(f"stack: {m}")
            stack.up()
        console.print(f"stack {stack.id} up: ingress {stack.ingress_url}")
        drill_ = Drill(embedded_target(stack), options, stack=stack, status=live.update)
        return _drive(drill_, scenarios, live)
    except KeyboardInterrupt:
        console.print("[bold red]interrupted[/] while the stack was starting")
        return {"status": "aborted", "abort_reason": "interrupted before the drill began"}
    finally:
        _ignore_stop_signals()  # teardown runs once, whole: a second Ctrl-C must not cut it
        with console.status("stopping the stack (healing every fault)"):
            errors = stack.down()
        for error in errors:
            console.print(f"[yellow]teardown:[/] {error}")


def _drive(drill_: Drill, scenarios: list[Scenario], live: _LiveView) -> dict[str, Any]:
    try:
        with live:
            return asyncio.run(drill_.run(scenarios))
    except DrillAborted as error:
        console.print(f"[bold red]drill aborted:[/] {error}")
    except KeyboardInterrupt:
        console.print("[bold red]interrupted:[/] every fault healed; the journal keeps what ran")
    return drill_.journal.data


def _guard_signals() -> None:
    """SIGTERM and SIGHUP behave like Ctrl-C, so a stopped drill heals and writes its
    journal (asyncio.run turns SIGINT into a cancellation of the drill; these too)."""

    def stop(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, stop)


def _ignore_stop_signals() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)


def _summary(
    journal: dict[str, Any], out: Path, accepted: Path | None, risk_config: Path | None
) -> int:
    table = Table(title="Game Day drill")
    for column in ("#", "scenario", "verdict", "key figures"):
        table.add_column(column)
    for s in journal.get("scenarios", []):
        table.add_row(
            str(s["id"]),
            s["title"],
            f"[{_STYLE[s['verdict']]}]{s['verdict'].upper()}[/]",
            key_figures(s),
        )
    console.print(table)
    out.mkdir(parents=True, exist_ok=True)
    if "journal_version" not in journal:  # interrupted before the drill began
        console.print("[bold red]DRILL ABORTED[/] before it began: nothing to judge")
        return EXIT_CANNOT_RUN
    try:
        typed = parse_journal(journal)
        result = evaluate(typed, accepted, risk_config)
    except (JournalError, InputError) as error:  # a harness bug: the journal is its own
        console.print(f"[bold red]cannot judge the drill:[/] {error}")
        return EXIT_CANNOT_RUN
    journal["gate"] = result.to_json()
    save_document(journal, out)
    write_reports(typed, journal, result, out)
    print_gate(result)
    console.print(
        f"journal: {out / 'journal.json'} · report: {out / HTML} (and report.md, junit.xml)"
    )
    if journal.get("status") != "complete":
        console.print(f"[bold red]DRILL {str(journal.get('status')).upper()}[/]")
        return EXIT_CANNOT_RUN
    verdict = journal.get("summary", {}).get("verdict", "unknown")
    console.print(
        f"[{_STYLE.get(verdict, 'yellow')}]ALL SCENARIOS {verdict.upper()}[/]"
        if verdict == "pass"
        else f"[bold red]DRILL RESULT: {verdict.upper()}[/]"
    )
    return result.exit_code


class _LiveView:
    """The live panel on a terminal; one line per phase change elsewhere (CI logs)."""

    def __init__(self, con: Console) -> None:
        self.console = con
        self.live: Live | None = None
        self._last = ""

    def __enter__(self) -> _LiveView:
        if self.console.is_terminal:
            self.live = Live(console=self.console, auto_refresh=False, transient=True)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)
            self.live = None

    def update(self, view: dict[str, Any]) -> None:
        line = f"{view.get('phase', '')} {view.get('scenario', '')}".strip()
        if self.live is None:
            if line != self._last:
                self.console.print(f"· {line}")
                self._last = line
            return
        status = Table.grid(padding=(0, 2))
        status.add_row("phase", Text(line, style="bold"))
        status.add_row("faults", ", ".join(view.get("faults", [])) or "none")
        rate, errors, p95 = view.get("rate"), view.get("error_rate"), view.get("p95_ms")
        status.add_row(
            "requests",
            f"{rate or 0:.0f}/s · errors {100 * (errors or 0):.1f}% · p95 {p95 or 0:.0f} ms",
        )
        status.add_row("alerts", ", ".join(view.get("alerts", [])) or "none firing")
        done = Table.grid(padding=(0, 2))
        for sid, title, verdict in view.get("results", []):
            done.add_row(str(sid), title, f"[{_STYLE[verdict]}]{verdict}[/]")
        self.live.update(Group(status, done), refresh=True)
