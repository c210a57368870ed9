"""Test-side peers for the bookings service: databases, an SMTP sink, a TCP relay that can
go down, a private redis-server, the running service (``Stack``) and request bursts."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from typing import Any, TypeVar

import httpx
import sqlalchemy as sa
import stripe
from aiosmtpd.controller import Controller
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from bookings.adapters import tables
from bookings.adapters.db import async_url
from bookings.domain.model import Role, Tier
from bookings.server import ServiceServer, bind, url_of
from bookings.services.auth import Principal, Tokens
from bookings.services.schema import migrate
from bookings.settings import Settings
from gameday.stack.processes import free_port
from stripe_emulator import EmulatorServer

T = TypeVar("T")
TEST_KEY = "sk_test_gameday_tests"
ADMIN_TOKEN = "test-admin-token"
SERVER_URLS = {
    "postgresql": "postgresql://postgres@127.0.0.1:5432/postgres",
    "mariadb": "mysql://root@127.0.0.1:3306/mysql",
}
# Children before parents, for deleting everything between tests.
TABLES = [
    "payment_transitions", "outbox", "payments", "idempotency_keys", "webhook_events",
    "audit_log", "feature_flags", "slots", "bookings", "resources", "users", "access_log",
]  # fmt: skip


def run(coro: Awaitable[T]) -> T:
    return asyncio.run(coro)  # type: ignore[arg-type]


# ---------------------------------------------------------------- databases


@dataclass
class ScratchDatabase:
    """One throw-away database on the machine's PostgreSQL or MariaDB server."""

    dialect: str
    name: str = field(default_factory=lambda: f"bk_test_{os.getpid()}_{uuid.uuid4().hex[:6]}")

    @property
    def url(self) -> str:
        server = SERVER_URLS[self.dialect]
        return server.rsplit("/", 1)[0] + "/" + self.name

    def engine(self) -> AsyncEngine:
        return create_async_engine(async_url(self.url), poolclass=NullPool)

    async def _admin(self, statement: str) -> None:
        engine = create_async_engine(
            async_url(SERVER_URLS[self.dialect]), poolclass=NullPool, isolation_level="AUTOCOMMIT"
        )
        async with engine.connect() as conn:
            await conn.execute(sa.text(statement))
        await engine.dispose()

    def create(self) -> ScratchDatabase:
        async def go() -> None:
            await self._admin(f"CREATE DATABASE {self.name}")
            engine = self.engine()
            await migrate(engine)
            await engine.dispose()

        run(go())
        return self

    def drop(self) -> None:
        force = " WITH (FORCE)" if self.dialect == "postgresql" else ""
        run(self._admin(f"DROP DATABASE IF EXISTS {self.name}{force}"))

    def wipe(self) -> None:
        async def go() -> None:
            engine = self.engine()
            async with engine.begin() as conn:
                for table in TABLES:
                    await conn.execute(sa.text(f"DELETE FROM {table}"))  # noqa: S608 - fixed names
            await engine.dispose()

        run(go())

    def query(self, statement: str, **params: Any) -> list[Any]:
        async def go() -> list[Any]:
            engine = self.engine()
            async with engine.begin() as conn:
                rows = list((await conn.execute(sa.text(statement), params)).all())
            await engine.dispose()
            return rows

        return run(go())

    def scalar(self, statement: str, **params: Any) -> Any:
        return self.query(statement, **params)[0][0]


OVERLAPS = """
    SELECT a.id, b.id FROM bookings a JOIN bookings b
      ON a.resource_id = b.resource_id AND a.id < b.id
     AND a.starts_at < b.ends_at AND b.starts_at < a.ends_at
     WHERE a.status IN ('held', 'confirmed') AND b.status IN ('held', 'confirmed')
"""


# ---------------------------------------------------------------- data


@dataclass(frozen=True)
class World:
    """Users and one resource, created straight in the database."""

    customers: list[int]
    premium: int
    admin: int
    resource: int
    other_resource: int


async def _insert(engine: AsyncEngine, table: sa.Table, rows: list[dict[str, Any]]) -> list[int]:
    ids = []
    async with engine.begin() as conn:
        for row in rows:
            result = await conn.execute(sa.insert(table).values(**row))
            ids.append(int(result.inserted_primary_key[0]))  # type: ignore[index]
    return ids


def make_world(db: ScratchDatabase, customers: int = 5) -> World:
    now = datetime.now(UTC)

    def user(email: str, role: Role, tier: Tier = Tier.NORMAL) -> dict[str, Any]:
        return {"email": email, "password_hash": "scrypt$00$00", "role": role.value,
                "tier": tier.value, "created_at": now}  # fmt: skip

    async def go() -> World:
        engine = db.engine()
        people = [user(f"c{i}@example.test", Role.CUSTOMER) for i in range(customers)]
        people += [user("vip@example.test", Role.CUSTOMER, Tier.PREMIUM),
                   user("admin@example.test", Role.ADMIN)]  # fmt: skip
        ids = await _insert(engine, tables.users, people)
        resources = await _insert(engine, tables.resources, [
            {"kind": "guide", "name": f"Guide {i}", "hourly_rate_cents": 5000, "created_at": now}
            for i in range(2)
        ])  # fmt: skip
        await engine.dispose()
        return World(ids[:customers], ids[customers], ids[customers + 1], *resources)

    return run(go())


def slot(days: int = 1, hour: int = 10, hours: int = 2) -> tuple[str, str]:
    start = (datetime.now(UTC) + timedelta(days=days)).replace(
        hour=hour, minute=0, second=0, microsecond=0
    )
    return start.isoformat(), (start + timedelta(hours=hours)).isoformat()


# ---------------------------------------------------------------- SMTP


class SmtpSink:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps what it receives."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.refuse = False
        self._lock = threading.Lock()
        sink = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
                if sink.refuse:
                    return "451 4.3.0 try again later"
                with sink._lock:
                    sink.messages.append(message_from_bytes(envelope.content))
                return "250 OK"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def subjects(self) -> list[str]:
        with self._lock:
            return [str(m["Subject"]) for m in self.messages]

    def clear(self) -> None:
        with self._lock:
            self.messages.clear()
        self.refuse = False


# ---------------------------------------------------------------- faults


class TcpRelay:
    """A loopback TCP relay to a server that the test can take down and bring back.

    ``down()`` stops listening (new connections are refused) and resets every open one,
    which is what a database outage looks like from the service; ``up()`` listens again
    on the same port.
    """

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread.start()
        self.up()

    def _call(self, coro: Awaitable[T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)  # type: ignore[arg-type]

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        with contextlib.suppress(OSError):
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        self._writers.difference_update((writer, up_writer))

    def up(self) -> None:
        async def start() -> None:
            self._server = await asyncio.start_server(
                self._handle, "127.0.0.1", self.port, reuse_address=True
            )

        self._call(start())

    def down(self) -> None:
        async def stop() -> None:
            if self._server is not None:
                self._server.close()
                self._server = None
            for writer in list(self._writers):
                writer.transport.abort()
            self._writers.clear()

        self._call(stop())

    def close(self) -> None:
        self.down()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


class PrivateRedis:
    """A redis-server of the test's own, which it can stop and start on the same port."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.binary = binary
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(  # noqa: S603 - a fixed binary, loopback only
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                return
            time.sleep(0.02)
        raise RuntimeError("the private redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None


# ---------------------------------------------------------------- the service


class Stack:
    """The service wired to a test database, the emulator and the SMTP sink, with its
    webhook endpoint registered at the emulator.

    ``workers=0`` runs it on a thread of the test process (quick to start, for functional
    tests); ``workers=N`` runs N ``bookings serve`` processes, as a deployment does, so
    that concurrency tests get real parallelism between the client and the workers and
    among the workers. ``url`` is the first worker, ``urls`` all of them.
    """

    def __init__(
        self,
        db: ScratchDatabase,
        emulator: EmulatorServer,
        smtp: SmtpSink,
        *,
        workers: int = 0,
        database_url: str | None = None,
        redis_url: str = "redis://127.0.0.1:6379/0",
        **overrides: Any,
    ) -> None:
        self.db = db
        self.emulator = emulator
        self.smtp = smtp
        self.workers = workers
        self.sock = bind("127.0.0.1", 0) if workers == 0 else None
        ports = [free_port() for _ in range(workers)]
        self.urls = [url_of(self.sock)] if self.sock else [f"http://127.0.0.1:{p}" for p in ports]
        self.url = self.urls[0]
        self._ports = ports
        self.provider = stripe.StripeClient(TEST_KEY, base_addresses={"api": emulator.url})
        endpoint = self.provider.v1.webhook_endpoints.create(
            params={"url": f"{self.url}/webhooks/stripe", "enabled_events": ["*"]}
        )
        values: dict[str, Any] = {
            "environment": "test",
            "database_url": database_url or db.url,
            "redis_url": redis_url,
            "redis_key_prefix": f"bk-test-{uuid.uuid4().hex[:8]}",
            "stripe_api_key": TEST_KEY,
            "stripe_api_base": emulator.url,
            "stripe_webhook_secret": endpoint.secret,
            "smtp_port": smtp.port,
            "admin_token": ADMIN_TOKEN,
            "maintenance_interval_s": 0.2,
            "outbox_retry_base_s": 0.2,
            "db_breaker_reset_s": 0.5,
            "redis_breaker_reset_s": 0.5,
            "provider_breaker_reset_s": 0.5,
            "log_level": "warning",
        }
        values.update(overrides)
        self.settings = Settings(**values)
        self.tokens = Tokens(self.settings, lambda: datetime.now(UTC))
        self.http = httpx.Client(base_url=self.url, timeout=30)
        self.server: ServiceServer | None = None
        self.procs: list[subprocess.Popen[str]] = []
        self.worker_logs: list[Any] = []

    def __enter__(self) -> Stack:
        if self.sock is not None:
            self.server = ServiceServer(self.settings, self.sock).start()
            return self
        env = {**os.environ, **{f"BOOKINGS_{k.upper()}": str(v)
                               for k, v in self.settings.model_dump().items()}}  # fmt: skip
        for port in self._ports:
            log = tempfile.NamedTemporaryFile(
                "w+", prefix=f"bookings-worker-{port}-", suffix=".log", delete=False
            )
            self.worker_logs.append(log)
            self.procs.append(subprocess.Popen(  # noqa: S603 - our own CLI
                [sys.executable, "-m", "bookings", "serve", "--port", str(port),
                 "--log-level", self.settings.log_level],
                stdout=subprocess.PIPE, stderr=log, text=True, env=env,
            ))  # fmt: skip
        for proc in self.procs:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if not line.startswith("bookings listening on "):
                self.__exit__()
                raise RuntimeError(f"a bookings worker did not start: {line!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()
        if self.server is not None:
            self.server.stop()
        for proc in self.procs:
            proc.terminate()
        try:
            for proc in self.procs:
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
                    lines = [x for x in self.worker_log().splitlines() if '"request"' not in x]
                    tail = "\n".join(lines[-20:])
                    raise RuntimeError(
                        f"a bookings worker ignored SIGTERM for 20 s:\n{tail}"
                    ) from None
        finally:
            for proc in self.procs:
                if proc.stdout is not None:
                    proc.stdout.close()
            for log in self.worker_logs:
                log.close()
                os.unlink(log.name)

    def worker_log(self) -> str:
        """What the worker processes wrote to stderr so far (their JSON log lines)."""
        texts = []
        for log in self.worker_logs:
            log.flush()
            with open(log.name) as f:
                texts.append(f.read())
        return "".join(texts)

    def token(self, user_id: int, *, ttl_s: float | None = None, premium: bool = False) -> str:
        tier = Tier.PREMIUM if premium else Tier.NORMAL
        return self.tokens.issue(Principal(user_id, Role.CUSTOMER, tier), ttl_s).access_token

    def headers(self, user_id: int, key: str | None = None, **kw: Any) -> dict[str, str]:
        found = {"Authorization": f"Bearer {self.token(user_id, **kw)}"}
        if key is not None:
            found["Idempotency-Key"] = key
        return found

    @property
    def admin(self) -> dict[str, str]:
        return {"X-Admin-Token": ADMIN_TOKEN}

    @contextlib.contextmanager
    def client(self) -> Iterator[httpx.Client]:
        """The stack's one keep-alive client (building a client per call costs ~50 ms)."""
        yield self.http

    def hold(self, user_id: int, resource_id: int, when: tuple[str, str]) -> httpx.Response:
        return self.http.post("/bookings", headers=self.headers(user_id),
                              json={"resource_id": resource_id, "starts_at": when[0],
                                    "ends_at": when[1]})  # fmt: skip

    def pay(
        self, user_id: int, booking_id: int, key: str, card: str = "4242424242424242"
    ) -> httpx.Response:
        path = f"/bookings/{booking_id}/payment"
        return self.http.post(path, headers=self.headers(user_id, key),
                              json={"payment_method": card})  # fmt: skip

    def intents(self, booking_id: int | None = None) -> list[dict[str, Any]]:
        """PaymentIntents at the provider (from the emulator's ledger), of one booking."""
        found = list(self.emulator.ledger()["payment_intents"])
        if booking_id is None:
            return found
        return [pi for pi in found if pi["metadata"].get("booking_id") == str(booking_id)]

    def wait_for(self, predicate: Callable[[], bool], timeout_s: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.05)
        return predicate()


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    headers: dict[str, str]
    json: Any = None


async def _bursts(
    urls: Sequence[str], rounds: Sequence[Sequence[Call]]
) -> list[list[httpx.Response]]:
    """Each round's calls sent at the same instant (call i to ``urls[i % len(urls)]``), one
    round after the other, over connections opened once beforehand, one per call."""
    n = max(len(calls) for calls in rounds)
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        await asyncio.gather(*(client.get(f"{urls[i % len(urls)]}/health/live") for i in range(n)))

        async def one(gate: asyncio.Event, url: str, call: Call) -> httpx.Response:
            await gate.wait()
            return await client.request(call.method, url + call.path, headers=call.headers,
                                        json=call.json)  # fmt: skip

        answers = []
        for calls in rounds:
            gate = asyncio.Event()
            tasks = [asyncio.create_task(one(gate, urls[i % len(urls)], call))
                     for i, call in enumerate(calls)]  # fmt: skip
            await asyncio.sleep(0.02)
            gate.set()
            answers.append(list(await asyncio.gather(*tasks)))
        return answers


def bursts(
    urls: str | Sequence[str], rounds: Sequence[Sequence[Call]]
) -> list[list[httpx.Response]]:
    return run(_bursts([urls] if isinstance(urls, str) else urls, rounds))


def burst(urls: str | Sequence[str], calls: Sequence[Call]) -> list[httpx.Response]:
    return bursts(urls, [calls])[0]


# ---------------------------------------------------------------- the CLI, as an operator runs it


@dataclass(frozen=True)
class CliRun:
    """One finished ``bookings`` command: its exit code and what it printed."""

    code: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        """The non-empty lines of stderr (where the CLI says what went wrong)."""
        return [line for line in self.stderr.splitlines() if line.strip()]


def cli_env(**settings: object) -> dict[str, str]:
    """An environment for ``bookings`` commands: no inherited ``BOOKINGS_*`` variables, a
    fixed terminal width, ``environment=test``, and ``settings`` as ``BOOKINGS_<NAME>``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOOKINGS_")}
    env.update({"COLUMNS": "100", "NO_COLOR": "1", "BOOKINGS_ENVIRONMENT": "test"})
    env.update({f"BOOKINGS_{k.upper()}": str(v) for k, v in settings.items()})
    return env


def cli_start(args: Sequence[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "bookings", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip


def cli_all(
    runs: Sequence[tuple[Sequence[str], dict[str, str]]], timeout_s: float = 90
) -> list[CliRun]:
    """Run independent commands side by side (each start costs ~2 s of imports)."""
    procs = [cli_start(args, env) for args, env in runs]
    done = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            raise
        done.append(CliRun(proc.returncode, out, err))
    return done


def cli(*args: str, env: dict[str, str], timeout_s: float = 90) -> CliRun:
    return cli_all([(args, env)], timeout_s)[0]


def empty_database(dialect: str) -> ScratchDatabase:
    """A database with no tables at all (``ScratchDatabase.create`` would migrate it)."""
    db = ScratchDatabase(dialect)
    run(db._admin(f"CREATE DATABASE {db.name}"))
    return db


# ---------------------------------------------------------------- a partition


class StallingRelay(TcpRelay):
    """A ``TcpRelay`` that can also fail the way a network partition does: ``stall()``
    keeps every connection open and accepts new ones, but forwards no byte either way (no
    refusal, no reset: the peer learns nothing until its own timeouts fire); ``resume()``
    lets the open connections flow again and resets the ones accepted while stalled."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self._stalled = False
        self._held: set[asyncio.StreamWriter] = set()
        super().__init__(target_port, target_host)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._stalled:
            self._held.add(writer)  # accepted, then silence
            return
        await super()._handle(reader, writer)

    def _set_stalled(self, stalled: bool) -> None:
        async def apply() -> None:
            self._stalled = stalled
            for writer in list(self._writers):
                transport: Any = writer.transport
                if stalled:
                    transport.pause_reading()
                else:
                    transport.resume_reading()
            if not stalled:
                self._drop_held()

        self._call(apply())

    def _drop_held(self) -> None:
        for writer in self._held:
            writer.transport.abort()
        self._held.clear()

    def stall(self) -> None:
        self._set_stalled(True)

    def resume(self) -> None:
        self._set_stalled(False)

    def down(self) -> None:
        async def drop() -> None:
            self._drop_held()

        self._call(drop())
        super().down()
