"""``db-connections`` on MariaDB (the process list and ``innodb_trx``): a real client idle in
a transaction, and one waiting on its lock, against a scratch database with the reference
schema on the machine's MariaDB server."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from gameday.runbooks import database
from gameday.runbooks.context import RunbookTarget, Runtime
from gameday.runbooks.model import Diagnosis
from tests.bookings.support import ScratchDatabase
from tests.gameday.runbooks.support import quiet_client, wait_for

pytestmark = [pytest.mark.slow]


async def _insert_flag(db: ScratchDatabase) -> None:
    engine = db.engine()
    try:
        async with engine.begin() as conn:
            await conn.execute(
                sa.text(
                    "INSERT INTO feature_flags (name, enabled, updated_at, updated_by) "
                    "VALUES ('X', true, NOW(), 'test')"
                )
            )
    finally:
        await engine.dispose()


async def _kill(db: ScratchDatabase, thread: int) -> None:
    engine = db.engine()
    try:
        async with engine.connect() as conn:
            await conn.execute(sa.text(f"KILL {thread}"))  # an integer: KILL binds nothing
    finally:
        await engine.dispose()


@pytest.fixture
def scratch() -> Iterator[ScratchDatabase]:
    db = ScratchDatabase("mariadb").create()
    try:
        asyncio.run(_insert_flag(db))
        yield db
    finally:
        db.drop()


def _client(db: ScratchDatabase, *statements: str) -> subprocess.Popen[str]:
    mariadb = shutil.which("mariadb") or "mariadb"
    return quiet_client([mariadb, "-uroot", "-h127.0.0.1", "-P3306", db.name], *statements)


def _diagnose(db: ScratchDatabase, *, end: bool = False) -> tuple[Diagnosis, list[str]]:
    async def go() -> tuple[Diagnosis, list[str]]:
        target = RunbookTarget("scratch", db.url, "http://127.0.0.1:9", "", "", "")
        rt = Runtime(target, older_than_s=1)
        try:
            found = await database.diagnose(rt)
            done = [await database.end_session(rt, c, "INC") for c in found.changes] if end else []
            return found, done
        finally:
            await rt.close()

    return asyncio.run(go())


def test_an_idle_transaction_on_mariadb_is_found_and_killed(scratch: ScratchDatabase) -> None:
    holder = _client(scratch, "BEGIN", "SELECT name FROM feature_flags WHERE name = 'X' FOR UPDATE")
    waiter = None
    try:
        trx = "SELECT COUNT(*) FROM information_schema.INNODB_TRX"
        assert wait_for(lambda: scratch.scalar(trx))
        waiter = _client(
            scratch, "BEGIN", "SELECT name FROM feature_flags WHERE name = 'X' FOR UPDATE"
        )
        assert wait_for(
            lambda: scratch.scalar(
                "SELECT COUNT(*) FROM information_schema.INNODB_TRX WHERE trx_state = 'LOCK WAIT'"
            )
        )
        time.sleep(2.1)  # MariaDB counts a transaction's age in whole seconds
        found, _ = _diagnose(scratch)
        assert found.invariants == {"idle_in_transaction": 1, "waiting_on_locks": 1}
        assert len(found.changes) == 1
        assert any("pool use: /metrics not readable" in n for n in found.notes)
        # The waiting thread would notice its client is gone only once it gets the lock.
        waiting = scratch.scalar(
            "SELECT trx_mysql_thread_id FROM information_schema.INNODB_TRX "
            "WHERE trx_state = 'LOCK WAIT'"
        )
        waiter.kill()
        waiter.wait()
        asyncio.run(_kill(scratch, int(waiting)))
        assert wait_for(
            lambda: (
                not scratch.scalar(
                    "SELECT COUNT(*) FROM information_schema.INNODB_TRX "
                    "WHERE trx_state = 'LOCK WAIT'"
                )
            )
        )
        _found, done = _diagnose(scratch, end=True)
        assert done == [f"session {found.changes[0].detail['pid']} ended"]
        after = wait_for(
            lambda: (d := _diagnose(scratch)[0]).invariants["idle_in_transaction"] == 0 and d
        )
        assert after, "the session was not ended"
        assert after.invariants == {"idle_in_transaction": 0, "waiting_on_locks": 0}
    finally:
        for proc in (holder, waiter):
            if proc is not None:
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
                if proc.stdin is not None:
                    proc.stdin.close()
