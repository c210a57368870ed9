"""``gameday``: the drill harness's command line (a thin layer: parse, call, exit code)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from gameday import __version__
from gameday.cli_alerts import alerts_app
from gameday.cli_comms import comms, review
from gameday.cli_drill import drill
from gameday.cli_gate import gate, plan, report
from gameday.cli_runbook import runbook_app
from gameday.cli_stack import fault_app, stack_app
from gameday.preflight import ProviderPreflight
from gameday.receiver import WebhookReceiver
from gameday.stack.provider import ProviderStartError, run_provider
from gameday.verdict import Verdict

EXIT_PASS, EXIT_FAIL, EXIT_CANNOT_RUN = 0, 1, 3

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Game Day drills for booking and payment systems: break your system on purpose, "
    "prove nobody is charged twice and no slot is sold twice.",
)
console = Console()
app.add_typer(stack_app, name="stack")
app.add_typer(fault_app, name="fault")
app.add_typer(alerts_app, name="alerts")
app.add_typer(runbook_app, name="runbook")
app.command()(drill)
app.command()(gate)
app.command()(report)
app.command()(plan)
app.command()(comms)
app.command()(review)

_STYLE = {Verdict.PASS: "green", Verdict.FAIL: "bold red", Verdict.UNKNOWN: "yellow"}


@app.command()
def version() -> None:
    """Print the version."""
    console.print(f"gameday {__version__}")


@app.command()
def preflight(
    webhook_wait: Annotated[
        float, typer.Option(min=1, max=120, help="Seconds to wait for webhook deliveries.")
    ] = 10.0,
) -> None:
    """Check a payment provider is safe to drill against (the Stripe emulator by default).

    It starts the emulator, registers a webhook endpoint, pays, retries with the same
    idempotency key, declines, refunds past the cap and checks every webhook arrives
    signed. Exit codes: 0 all checks pass, 1 a check failed or was inconclusive, 3 it
    could not run.
    """
    try:
        with run_provider() as provider, WebhookReceiver() as receiver:
            console.print(f"payment provider: [bold]{provider.url}[/] (pid {provider.pid})")
            preflight = ProviderPreflight(provider.url, receiver, webhook_wait)
            with console.status("pre-flight") as status:
                results = preflight.run(lambda name: status.update(f"pre-flight: {name}"))
    except ProviderStartError as exc:
        console.print(f"[bold red]cannot run the drill:[/] {exc}")
        raise typer.Exit(EXIT_CANNOT_RUN) from None
    table = Table(title="Payment provider pre-flight")
    for column in ("check", "verdict", "evidence"):
        table.add_column(column)
    for result in results:
        table.add_row(
            result.name, f"[{_STYLE[result.verdict]}]{result.verdict.value}[/]", result.detail
        )
    console.print(table)
    failed = [r for r in results if r.verdict is not Verdict.PASS]
    console.print(
        "[bold red]PRE-FLIGHT FAILED[/]" if failed else "[bold green]PRE-FLIGHT PASSED[/]"
    )
    raise typer.Exit(EXIT_FAIL if failed else EXIT_PASS)


def main() -> None:
    app()
