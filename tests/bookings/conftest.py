"""Fixtures for the bookings tests: real PostgreSQL and MariaDB databases (one throw-away
database per dialect per session, emptied between tests), an SMTP sink, and the service."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bookings.observability import logging as logs
from stripe_emulator import EmulatorServer
from tests.bookings.support import ScratchDatabase, SmtpSink, Stack, World, make_world

DIALECTS = ["postgresql", "mariadb"]


@pytest.fixture(scope="session", autouse=True)
def _json_logs() -> None:
    logs.configure("warning")


@pytest.fixture(scope="session")
def databases() -> Iterator[dict[str, ScratchDatabase]]:
    made: dict[str, ScratchDatabase] = {}
    yield made
    for db in made.values():
        db.drop()


def _database(databases: dict[str, ScratchDatabase], dialect: str) -> ScratchDatabase:
    if dialect not in databases:
        databases[dialect] = ScratchDatabase(dialect).create()
    db = databases[dialect]
    db.wipe()
    return db


@pytest.fixture(params=DIALECTS)
def db(request: pytest.FixtureRequest, databases: dict[str, ScratchDatabase]) -> ScratchDatabase:
    """An empty, migrated database — once on PostgreSQL, once on MariaDB."""
    return _database(databases, request.param)


@pytest.fixture
def pg(databases: dict[str, ScratchDatabase]) -> ScratchDatabase:
    """An empty, migrated PostgreSQL database, for tests where the dialect does not matter."""
    return _database(databases, "postgresql")


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    sink.controller.start()
    yield sink
    sink.controller.stop()


@pytest.fixture
def smtp(smtp_server: SmtpSink) -> SmtpSink:
    smtp_server.clear()
    return smtp_server


def _this_tests_db(request: pytest.FixtureRequest) -> ScratchDatabase:
    """``db`` if the test asks for it (both dialects), else ``pg``."""
    name = "db" if "db" in request.fixturenames else "pg"
    found: ScratchDatabase = request.getfixturevalue(name)
    return found


@pytest.fixture
def world(request: pytest.FixtureRequest) -> World:
    return make_world(_this_tests_db(request))


@pytest.fixture
def stack(
    request: pytest.FixtureRequest, emulator: EmulatorServer, smtp: SmtpSink
) -> Iterator[Stack]:
    """The service on a thread, over this test's database."""
    with Stack(_this_tests_db(request), emulator, smtp) as running:
        yield running


@pytest.fixture
def workers(
    request: pytest.FixtureRequest, emulator: EmulatorServer, smtp: SmtpSink
) -> Iterator[Stack]:
    """The service as two ``bookings serve`` processes, as the drill stack runs it."""
    with Stack(_this_tests_db(request), emulator, smtp, workers=2) as running:
        yield running


@pytest.fixture
def fresh_db(request: pytest.FixtureRequest) -> Iterator[ScratchDatabase]:
    """A database of the test's own, for the dialect given by indirect parametrization: the
    unsafe variant drops the constraints of the schema it runs on."""
    db = ScratchDatabase(request.param).create()
    yield db
    db.drop()
