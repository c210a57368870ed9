"""``gameday stack …`` and ``gameday fault …``: the embedded stack and the nemesis from a
terminal (parse, call, print, exit code — the work is in :mod:`gameday.stack` and
:mod:`gameday.faults`)."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import time
from types import FrameType
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from gameday.faults import KINDS, FaultError
from gameday.stack.control import ControlServer, StackClient
from gameday.stack.options import StackOptions
from gameday.stack.processes import StartError, alive
from gameday.stack.stack import Stack
from gameday.stack.state import running_stacks

EXIT_CANNOT_RUN = 3
console = Console()
err = Console(stderr=True)
stack_app = typer.Typer(no_args_is_help=True, help="The embedded drill stack.")
fault_app = typer.Typer(no_args_is_help=True, help="Inject and heal faults in a running stack.")

StackId = Annotated[
    str | None, typer.Option("--stack", help="Stack id (default: the only or newest running).")
]


class _StopRequested(Exception):  # noqa: N818 - a request to stop, not an error
    """Raised in the main thread by SIGINT/SIGTERM/SIGHUP or the control API's /down."""


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _ignore_stop_signals() -> None:
    """Teardown runs once, uninterrupted."""
    for sig in _STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


def _install_stop_signals() -> None:
    def stop(signum: int, frame: FrameType | None) -> None:
        _ignore_stop_signals()
        raise _StopRequested(signal.Signals(signum).name)

    for sig in _STOP_SIGNALS:
        signal.signal(sig, stop)


@stack_app.command("up")
def up(
    workers: Annotated[int, typer.Option(min=1, max=8, help="bookings worker processes.")] = 2,
    pace: Annotated[
        str, typer.Option(help="fast (1 s scrapes, seconds-long outages) or real.")
    ] = "fast",
    database_url: Annotated[
        str | None,
        typer.Option(
            help="Use this PostgreSQL "
            "(postgresql://…) or MariaDB (mysql://…) instead of a private one."
        ),
    ] = None,
    redis_url: Annotated[str | None, typer.Option(help="Use this Redis (redis://…).")] = None,
    provider_url: Annotated[
        str | None, typer.Option(help="Use this running stripe_emulator.")
    ] = None,
    smtp_url: Annotated[str | None, typer.Option(help="Use this SMTP server (smtp://h:p).")] = None,
    monitoring: Annotated[bool, typer.Option(help="Prometheus + Alertmanager.")] = True,
    unsafe: Annotated[bool, typer.Option(help="The service with every safeguard removed.")] = False,
) -> None:
    """Start a private throw-away stack on 127.0.0.1 and hold it until Ctrl-C, SIGTERM or
    `gameday stack down`; then remove every process and file it made."""
    if pace not in ("fast", "real"):
        err.print("gameday stack up: --pace must be fast or real")
        raise typer.Exit(2)
    options = StackOptions(workers=workers, pace=pace, database_url=database_url,  # type: ignore[arg-type]
                           redis_url=redis_url, provider_url=provider_url, smtp_url=smtp_url,
                           monitoring=monitoring, unsafe=unsafe)  # fmt: skip
    _install_stop_signals()
    stack = Stack(options)
    control: ControlServer | None = None
    try:
        with console.status("starting the stack") as status:
            stack.progress = status.update
            stack.up()
            control = ControlServer(stack)
            control.start()
        _print_stack(stack.state(), {})
        console.print("stack ready — Ctrl-C or [bold]gameday stack down[/] removes it")
        while True:
            time.sleep(3600)
    except _StopRequested as stop:
        console.print(f"{stop}: removing the stack")
    except StartError as error:
        err.print(f"[bold red]cannot start the stack:[/] {error}")
        raise typer.Exit(EXIT_CANNOT_RUN) from None
    finally:
        _ignore_stop_signals()
        if control is not None:
            control.stop()
        problems = stack.down()
        for problem in problems:
            err.print(f"[yellow]teardown:[/] {problem}")
    console.print("stack removed")


def _pick(stack_id: str | None) -> dict[str, Any]:
    stacks = running_stacks()
    if stack_id is not None:
        stacks = [s for s in stacks if s.get("id") == stack_id]
    if not stacks:
        err.print("no running stack" + (f" with id {stack_id}" if stack_id else "")
                  + " (start one with `gameday stack up`)")  # fmt: skip
        raise typer.Exit(1)
    return stacks[0]


def _client(stack_id: str | None) -> StackClient:
    try:
        return StackClient(_pick(stack_id))
    except FaultError as error:
        err.print(str(error))
        raise typer.Exit(1) from None


@stack_app.command("status")
def status(
    stack_id: StackId = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show what runs where, worker readiness and active faults."""
    client = _client(stack_id)
    try:
        found = client.status()
    except FaultError as error:
        err.print(str(error))
        raise typer.Exit(1) from None
    finally:
        client.close()
    found.pop("control", None)
    found.pop("secrets", None)
    if as_json:
        console.print_json(json.dumps(found))
        return
    _print_stack(found, found.get("ready", {}))
    _print_faults(found.get("faults", []))


@stack_app.command("down")
def down(
    stack_id: StackId = None,
    timeout_s: Annotated[float, typer.Option(min=1, max=600, help="Seconds to wait.")] = 60,
) -> None:
    """Stop a running stack and wait until every process and file of it is gone."""
    state = _pick(stack_id)
    try:
        client = StackClient(state)
    except FaultError:  # still starting: no control API yet; the owner handles SIGTERM
        os.kill(int(state["owner_pid"]), signal.SIGTERM)
    else:
        try:
            client.down()
        except FaultError:
            os.kill(int(state["owner_pid"]), signal.SIGTERM)
        finally:
            client.close()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and alive(int(state["owner_pid"])):
        time.sleep(0.1)
    if alive(int(state["owner_pid"])):
        err.print(f"stack {state['id']} is still stopping after {timeout_s:.0f} s")
        raise typer.Exit(1)
    console.print(f"stack {state['id']} removed")


def _print_stack(state: dict[str, Any], ready: dict[str, int]) -> None:
    table = Table(title=f"stack {state.get('id')} ({state.get('pace')} pace)")
    for column in ("part", "address", "pid", "ready"):
        table.add_column(column)
    for name, part in state.get("parts", {}).items():
        pid = part.get("pid")
        shown = str(pid) if pid else ("[dim]existing server[/]" if not part.get("managed")
                                      else "[red]not running[/]")  # fmt: skip
        mark = {200: "[green]yes[/]", 0: "[red]no answer[/]"}.get(ready.get(name, -1), "")
        if name in ready and ready[name] not in (0, 200):
            mark = f"[yellow]{ready[name]}[/]"
        table.add_row(name, str(part.get("address", "")), shown, mark)
    console.print(table)
    console.print(f"ingress (in front of the workers): [bold]{state.get('ingress')}[/]")
    for name, url in (state.get("monitoring") or {}).items():
        console.print(f"{name}: {url}")
    links = state.get("links", {})
    console.print("proxy links: " + ", ".join(f"{n}→{a}" for n, a in links.items()))


def _print_faults(faults: list[dict[str, Any]]) -> None:
    if not faults:
        console.print("no active faults")
        return
    table = Table(title="active faults")
    for column in ("id", "kind", "target", "params", "heals in"):
        table.add_column(column)
    for fault in faults:
        params = ", ".join(f"{k}={v}" for k, v in fault.get("params", {}).items())
        table.add_row(fault["id"], fault["kind"], fault["target"], params,
                      f"{fault.get('heals_in_s', 0):.0f} s")  # fmt: skip
    console.print(table)


def _params(pairs: list[str]) -> dict[str, str]:
    found = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            err.print(f"--param wants key=value, got {pair!r}")
            raise typer.Exit(2)
        found[key.strip()] = value.strip()
    return found


@fault_app.command("inject")
def inject(
    kind: Annotated[str, typer.Argument(help="Fault kind (see `gameday fault kinds`).")],
    target: Annotated[
        str,
        typer.Argument(
            help="w1.db, w1, db, all, ingress (network); w1, "
            "workers, db, redis, provider, smtp (process); "
            "host (resource); clients (token_expiry)."
        ),
    ],
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="key=value")] = None,
    duration_s: Annotated[
        float,
        typer.Option("--duration", min=0.1, max=3600, help="Seconds until it heals by itself."),
    ] = 60,
    stack_id: StackId = None,
) -> None:
    """Inject a fault into the running stack; it heals itself after --duration."""
    client = _client(stack_id)
    try:
        entry = client.inject(kind, target, _params(param or []), duration_s)
    except FaultError as error:
        err.print(f"gameday fault inject: {error}")
        raise typer.Exit(2) from None
    finally:
        client.close()
    console.print(f"fault {entry['id']} injected: {kind} on {target}, heals in {duration_s:g} s")


@fault_app.command("heal")
def heal(
    fault_id: Annotated[str | None, typer.Argument(help="Fault id; omit to heal all.")] = None,
    stack_id: StackId = None,
) -> None:
    """Heal one fault, or every active fault."""
    client = _client(stack_id)
    try:
        client.heal(fault_id)
    except FaultError as error:
        err.print(f"gameday fault heal: {error}")
        raise typer.Exit(1) from None
    finally:
        client.close()
    console.print(f"healed {fault_id or 'every fault'}")


@fault_app.command("list")
def list_faults(stack_id: StackId = None) -> None:
    """The active faults of the running stack."""
    client = _client(stack_id)
    try:
        _print_faults(client.faults())
    except FaultError as error:
        err.print(str(error))
        raise typer.Exit(1) from None
    finally:
        client.close()


@fault_app.command("kinds")
def kinds() -> None:
    """Every fault kind with its parameters and defaults."""
    table = Table(title="fault kinds")
    for column in ("kind", "parameters (defaults)", "what"):
        table.add_column(column)
    for name, cls in sorted(KINDS.items()):
        fields = [f for f in dataclasses.fields(cls) if f.name != "target"]
        params = ", ".join(f.name if f.default is dataclasses.MISSING
                           else f"{f.name}={f.default!r}" for f in fields)  # fmt: skip
        doc = (cls.__doc__ or "").strip().split("\n")[0]
        doc = "" if doc.startswith(f"{cls.__name__}(") else doc  # dataclass's generated doc
        table.add_row(name, params, doc)
    console.print(table)
