"""``stripe-emulator``: serve the emulator until interrupted."""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Annotated

import structlog
import typer

from stripe_emulator.emulator import Emulator, Settings
from stripe_emulator.server import bind, make_server, serve, url_of
from stripe_emulator.webhooks import DeliverySettings

app = typer.Typer(add_completion=False, help=__doc__)


def configure_logging(level: str) -> None:
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )


@app.command()
def run(
    host: Annotated[
        str, typer.Option(help="Interface to bind; keep it on loopback.")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="TCP port; 0 picks a free one.")
    ] = 12111,
    webhook_timeout: Annotated[
        float, typer.Option(min=0.1, max=60, help="Seconds a webhook endpoint has to answer.")
    ] = 10.0,
    webhook_retry_base: Annotated[
        float,
        typer.Option(min=0.01, help="First retry delay (emulator seconds); doubles per attempt."),
    ] = 60.0,
    webhook_workers: Annotated[
        int, typer.Option(min=1, max=256, help="Concurrent deliveries.")
    ] = 8,
    clock_speed: Annotated[
        float, typer.Option(min=0.001, max=1_000_000, help="Emulator seconds per wall second.")
    ] = 1.0,
    allow_remote_webhooks: Annotated[
        bool, typer.Option(help="Accept webhook URLs that are not on this machine.")
    ] = False,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "warning",
) -> None:
    """Serve a Stripe-faithful payment provider on HOST:PORT until interrupted.

    Prints one line 'stripe-emulator listening on URL' once it accepts requests.
    """
    if log_level.lower() not in ("debug", "info", "warning", "error"):
        raise typer.BadParameter("choose debug, info, warning or error", param_hint="--log-level")
    configure_logging(log_level)
    settings = Settings(
        clock_speed=clock_speed,
        delivery=DeliverySettings(
            timeout_s=webhook_timeout, retry_base_s=webhook_retry_base, workers=webhook_workers
        ),
        allow_remote_webhooks=allow_remote_webhooks,
    )
    try:
        sock = bind(host, port)
    except OSError as exc:
        typer.echo(f"stripe-emulator: cannot listen on {host}:{port}: {exc.strerror}", err=True)
        raise typer.Exit(2) from None
    url = url_of(sock)
    server = make_server(Emulator(settings), sock, log_level.lower())

    def ready() -> None:
        typer.echo(f"stripe-emulator listening on {url}")
        sys.stdout.flush()

    with asyncio.Runner(loop_factory=server.config.get_loop_factory()) as runner:
        runner.run(serve(server, sock, ready))


def main() -> None:
    app()
