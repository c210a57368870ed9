"""Parts pointed at existing servers: MariaDB instead of the private PostgreSQL, and the
machine's own Redis. The workers still reach them through their proxies."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator

import pytest

from gameday.faults import FaultError, build
from gameday.stack.options import StackOptions
from gameday.stack.stack import Stack, wait_for

MARIADB = "mysql://root@127.0.0.1:3306"


def _mariadb(statement: str) -> str:
    return subprocess.run(  # noqa: S603 - fixed client, loopback server
        ["/usr/bin/mariadb", "-h127.0.0.1", "-uroot", "-N", "-e", statement],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout.strip()  # fmt: skip


def _drill_users(database: str) -> int:
    query = f"SELECT COUNT(*) FROM {database}.users WHERE gameday = 1"  # noqa: S608 - our name
    return int(_mariadb(query))


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    name = f"gd_stack_{uuid.uuid4().hex[:8]}"
    _mariadb(f"CREATE DATABASE {name}")
    yield name
    _mariadb(f"DROP DATABASE IF EXISTS {name}")


def test_a_stack_on_existing_mariadb_and_redis(database: str) -> None:
    options = StackOptions(workers=1, monitoring=False, database_url=f"{MARIADB}/{database}",
                           redis_url="redis://127.0.0.1:6379/0")  # fmt: skip
    with Stack(options) as stack:
        assert stack.parts["db"].pid is None  # an existing server: not ours
        worker = stack.workers["w1"]
        status, body = worker.health("ready")
        assert status == 200, body
        assert stack.links["w1.db"] in worker.env["BOOKINGS_DATABASE_URL"]
        assert _drill_users(database) == 46
        assert stack.faults is not None
        with pytest.raises(FaultError, match="existing server"):
            stack.faults.inject(build("kill", "db", {}), 5)
        down = stack.faults.inject(build("down", "w1.db", {}), 30)  # the link is still ours
        assert worker.health("ready")[0] == 503
        stack.faults.heal(down.id)
        assert wait_for(lambda: worker.health("ready")[0] == 200, 10)
    # Stopping removes the drill data it seeded in a database it does not own.
    assert _drill_users(database) == 0
