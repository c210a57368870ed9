"""``slow-responses`` must find a slow route. The reference service cannot be made slow for
long (its request deadline, connect timeout and breaker turn a slow database into fast
503s), so the target here has every time bound switched off, as in the drill's broken
slow-database target, and the database link gets real latency under live traffic (150 ms
a chunk: about 2 s a request)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gameday.cli import app
from gameday.drill.hooks import Hooks
from gameday.faults import build
from gameday.stack.options import StackOptions
from gameday.stack.stack import Stack
from tests.gameday.runbooks.support import said, token, traffic

pytestmark = [pytest.mark.slow]
UNBOUNDED = {
    "BOOKINGS_REQUEST_DEADLINE_S": "0",
    "BOOKINGS_DB_POOL_TIMEOUT_S": "10",
    "BOOKINGS_DB_CONNECT_TIMEOUT_S": "30",
    "BOOKINGS_DB_STATEMENT_TIMEOUT_S": "60",
    "BOOKINGS_DB_BREAKER_FAILURES": "1000000",
}


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with Stack(StackOptions(service_env=UNBOUNDED)) as running:
        yield running


def _run(stack: Stack, out: Path) -> str:
    done = CliRunner().invoke(
        app, ["runbook", "slow-responses", "--stack", stack.id, "--out", str(out), "--window", "4"]
    )
    return f"exit {done.exit_code}: " + said(done)


def test_a_slow_database_is_found_as_a_slow_route(stack: Stack, tmp_path: Path) -> None:
    bearer = token(stack)
    calm = _run(stack, tmp_path)
    assert calm.startswith("exit 0"), calm  # the same traffic, healthy: nothing found
    hooks = Hooks(stack, tmp_path)
    entry = hooks.inject(build("latency", "db", {"ms": 150}), 60)
    try:
        with traffic(stack, bearer, clients=2):
            slow = _run(stack, tmp_path)
    finally:
        assert hooks.heal(entry.id) is None
    assert slow.startswith("exit 1"), slow
    assert "route(s) with p95 over 1.5 s" in slow
    assert "'route': '/resources'" in slow
