"""``bookings``: serve the reference service and run its operational commands.

Every command reads the same ``BOOKINGS_*`` settings as the service; options override the
connection URLs. Exit codes: 0 success, 1 divergences found (reconcile), 2 bad input,
3 a dependency was unreachable.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from bookings.adapters.db import is_unavailable
from bookings.bootstrap import Container, build
from bookings.errors import BookingsError, DbUnavailable, ProviderUnavailable
from bookings.observability import logging as logs
from bookings.server import bind, make_server, url_of
from bookings.server import serve as run_server
from bookings.services import schema
from bookings.services import seed as drill_data
from bookings.settings import Settings

# Markdown mode reflows the docstrings (rich mode keeps their hard line breaks); soft
# wrap keeps a one-line message on one line whatever the terminal width.
app = typer.Typer(
    add_completion=False, help=__doc__, no_args_is_help=True, rich_markup_mode="markdown"
)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")

DatabaseUrl = Annotated[
    str | None,
    typer.Option("--database-url", help="postgresql://... or mysql://... (BOOKINGS_DATABASE_URL)"),
]


def _settings(**overrides: Any) -> Settings:
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as error:
        for problem in error.errors():
            where = ".".join(str(p) for p in problem["loc"]) or "settings"
            err.print(f"bookings: {where}: {problem['msg']}")
        raise typer.Exit(2) from None


def _run(settings: Settings, job: Callable[[Container], Awaitable[T]]) -> T:
    """Build the container, run one job, close it; dependency trouble is one clear line."""

    async def main() -> T:
        container = build(settings)
        try:
            return await job(container)
        finally:
            await container.close()

    logs.configure(settings.log_level if settings.log_level != "info" else "warning")
    try:
        return asyncio.run(main())
    except DbUnavailable:
        err.print("bookings: the database is unreachable (check --database-url)")
    except ProviderUnavailable:
        err.print("bookings: the payment provider is unreachable (check BOOKINGS_STRIPE_API_BASE)")
    except BookingsError as error:
        err.print(f"bookings: {error.message}")
        raise typer.Exit(2) from None
    raise typer.Exit(3)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port; 0 picks one.")] = 8000,
    database_url: DatabaseUrl = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Serve the API on HOST:PORT until interrupted (one worker process; run several for
    more). Prints 'bookings listening on URL' once it accepts requests."""

    settings = _settings(database_url=database_url, log_level=log_level.lower())
    if not settings.unsafe_no_safeguards:
        # Refuse a database without its constraints in one line, before uvicorn starts
        # (whose lifespan failure is a traceback). An unreachable database is not fatal.
        _run(settings, lambda c: c.prepare())
    logs.configure(settings.log_level)
    try:
        sock = bind(host, port)
    except OSError as error:
        err.print(f"bookings: cannot listen on {host}:{port}: {error.strerror}")
        raise typer.Exit(2) from None
    url = url_of(sock)
    server = make_server(build(settings), settings.log_level)

    def ready() -> None:
        print(f"bookings listening on {url}", flush=True)

    with asyncio.Runner(loop_factory=server.config.get_loop_factory()) as runner:
        runner.run(run_server(server, sock, ready))


@app.command()
def migrate(database_url: DatabaseUrl = None) -> None:
    """Bring the database schema to the latest revision (PostgreSQL or MariaDB)."""

    async def job(c: Container) -> str | None:
        try:
            await schema.migrate(c.db.engine)
            return await schema.current_revision(c.db.engine)
        except OSError as error:
            raise DbUnavailable() from error

    revision = _run(_settings(database_url=database_url), _guard(job))
    out.print(f"schema at revision {revision}")


@app.command("seed")
def seed_command(
    gameday: Annotated[bool, typer.Option("--gameday", help="The drill population.")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Create the Game Day drill data (customers, premium customers, guides, an admin)."""
    if not gameday:
        err.print("bookings seed: only --gameday data exists; pass --gameday")
        raise typer.Exit(2)
    report = _run(_settings(database_url=database_url), _guard(lambda c: drill_data.seed(c.ctx)))
    verb = "created" if report.created else "already present"
    out.print(
        f"drill data {verb}: {report.customers} customers, {report.premium} premium, "
        f"{report.guides} guides with {report.slots} overlapping slots, {report.admins} admin "
        "(all tagged gameday=true)"
    )


@app.command()
def cleanup(
    gameday: Annotated[bool, typer.Option("--gameday", help="Remove the drill data.")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Remove exactly the rows tagged gameday=true and everything attached to them."""
    if not gameday:
        err.print("bookings cleanup: only --gameday data can be removed; pass --gameday")
        raise typer.Exit(2)
    removed = _run(
        _settings(database_url=database_url), _guard(lambda c: drill_data.cleanup(c.ctx))
    )
    out.print("removed " + ", ".join(f"{n} {table}" for table, n in removed.items()))


@app.command()
def reconcile(
    apply: Annotated[bool, typer.Option("--apply", help="Fix what can be fixed.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    limit: Annotated[int, typer.Option(min=1, max=1_000_000, help="Intents to read.")] = 10_000,
    database_url: DatabaseUrl = None,
) -> None:
    """Compare our payments with the provider's PaymentIntents; exit 1 if anything is left
    unresolved (with --apply: after fixing)."""
    report = _run(
        _settings(database_url=database_url),
        _guard(lambda c: c.reconciler.run(apply=apply, limit=limit)),
    )
    if as_json:
        body = {
            "intents_seen": report.intents_seen,
            "payments_seen": report.payments_seen,
            "divergences": [asdict(d) for d in report.divergences],
        }
        print(json.dumps(body, indent=2))
    else:
        table = Table("kind", "booking", "intent", "ours", "provider", "fixed")
        for column in table.columns:  # wrap long intent ids rather than crop them
            column.overflow = "fold"
        for d in report.divergences:
            table.add_row(d.kind, str(d.booking_id), d.intent_id or "-", d.ours or "-",
                          d.theirs or "-", "yes" if d.fixed else "no")  # fmt: skip
        out.print(f"{report.intents_seen} intents, {report.payments_seen} payments checked")
        out.print(table if report.divergences else "no divergences")
    if report.unresolved:
        raise typer.Exit(1)


@app.command("expire-holds")
def expire_holds(database_url: DatabaseUrl = None) -> None:
    """Release holds past their expiry now (the service also does this in the background)."""
    released = _run(_settings(database_url=database_url), _guard(lambda c: c.holds.expire_due()))
    out.print(f"released {len(released)} expired holds")


def _guard(job: Callable[[Container], Awaitable[T]]) -> Callable[[Container], Awaitable[T]]:
    """Connection errors raised outside ``Database.transaction`` count as unreachable too."""

    async def run(c: Container) -> T:
        try:
            return await job(c)
        except Exception as error:
            if is_unavailable(error):  # e.g. MariaDB's "can't connect" OperationalError
                raise DbUnavailable() from error
            raise

    return run


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
