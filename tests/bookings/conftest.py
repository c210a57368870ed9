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


@pytest.fixture
def world(request: pytest.FixtureRequest) -> World:
    db = (
        request.getfixturevalue("db")
        if "db" in request.fixturenames
        else request.getfixturevalue("pg")
    )
    return make_world(db)


@pytest.fixture
def stack(
    request: pytest.FixtureRequest, emulator: EmulatorServer, smtp: SmtpSink
) -> Iterator[Stack]:
    """The service over this test's database (``db`` if the test asks for it, else ``pg``)."""
    db = (
        request.getfixturevalue("db")
        if "db" in request.fixturenames
        else request.getfixturevalue("pg")
    )
    with Stack(db, emulator, smtp) as running:
        yield running
