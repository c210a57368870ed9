"""Hold throughput of the bookings service, next to the same transaction sent straight to
PostgreSQL through the driver in the same run.

    .venv/bin/python bench/booking_throughput.py [--quick] [--no-access-log]

Creates a throw-away database on the PostgreSQL at 127.0.0.1:5432 (user postgres, trust
auth), migrates it, inserts users and resources directly, and starts the service as one
``bookings serve`` process on 127.0.0.1 (a Redis key prefix of its own; holds need neither
the payment provider nor SMTP). Two shapes, each at concurrency 1, 8 and 32:

- distinct: every worker has a resource of its own and every request a new range on it, so
  every hold succeeds (201) and no two transactions wait for one lock: holds per second;
- contended: every request holds the same range of one resource, so one answer is 201 and
  all the others 409 ``slot_taken``: requests per second through the resource's row lock.

Each cell is measured twice, with the same number of requests and workers:

- service: ``POST /bookings`` with a bearer token, from asyncio workers in this process,
  each with its own httpx client and connection and a customer of its own (the rate limit is
  raised so that it counts but never refuses);
- direct: the statements ``services/holds.py`` issues, as SQLAlchemy renders them (lock the
  resource row, expire stale holds in the range, look for an active overlap, insert), in one
  transaction through an asyncpg pool as large as the service's (10 + 5 overflow), and no
  more: no ping on checkout, no reset on release. An overlap found is the 409.

Before the clock starts each worker makes a few untimed holds, and both sides are primed
once (pools filled, statements prepared), so the figures are of a warm service.

It prints (a) requests per second and the ratio service/direct, (b) latency percentiles,
(c) the answers by status and the CPU time per request of the service process, of this
process as its client, and of this process running the direct transactions. Answers other
than 201 and 409 are counted and named; the exit code is 1 if they exceed 5% of a cell (the
figures would describe failures more than holds), if a contended range was held other than
exactly once, or if a free range was refused.

The service, this process and PostgreSQL share the machine's cores, so absolute figures
depend on the machine and on whatever else runs on it; the ratio service/direct and the CPU
per request are what compare across runs. Every phase is bounded in count and in time; the
service is stopped and the database dropped at the end, also on errors, Ctrl-C and SIGTERM
(a SIGKILL leaves the database ``bench_bookings_<pid>_<hex>`` behind; the service dies with
this process on Linux).

One file of about 700 lines, over the usual module budget: a bench runs as a script, may not
import from tests/, and its parts (world, service process, the two sides, cells, report) only
make sense together.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import itertools
import math
import os
import platform
import selectors
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

import asyncpg  # type: ignore[import-untyped]
import httpx
import uvloop
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from bookings.adapters.db import async_url
from bookings.domain.model import Role, Tier, TimeRange, price_cents
from bookings.services.auth import Principal, Tokens
from bookings.services.schema import migrate
from bookings.settings import Settings

PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
CONCURRENCY = (1, 8, 32)
SHAPES = ("distinct", "contended")
POOL_SIZE, POOL_OVERFLOW, POOL_TIMEOUT_S = 10, 5, 1.5  # the service's defaults, set explicitly
STATEMENT_TIMEOUT_S = 5.0
PHASE_LIMIT_S = 300.0
REQUEST_TIMEOUT_S = 10.0
START_LIMIT_S = 30.0
RATE_CENTS = 5000
CREATED, TAKEN = "201", "409"
READY_PREFIX = "bookings listening on "

# What holds.py runs, as SQLAlchemy 2 renders queries.py for asyncpg (parameters included).
LOCK_RESOURCE = """SELECT resources.id, resources.kind, resources.name, resources.owner_user_id,
 resources.hourly_rate_cents, resources.gameday, resources.created_at FROM resources
 WHERE resources.id = $1::BIGINT FOR UPDATE"""
RELEASE_STALE = """UPDATE bookings SET status=$1::VARCHAR, updated_at=$2::TIMESTAMP WITH TIME ZONE
 WHERE bookings.resource_id = $3::BIGINT AND bookings.starts_at < $4::TIMESTAMP WITH TIME ZONE
 AND bookings.ends_at > $5::TIMESTAMP WITH TIME ZONE AND bookings.status = $6::VARCHAR
 AND bookings.hold_expires_at <= $7::TIMESTAMP WITH TIME ZONE"""
FIRST_OVERLAP = """SELECT bookings.id FROM bookings WHERE bookings.resource_id = $1::BIGINT
 AND bookings.starts_at < $2::TIMESTAMP WITH TIME ZONE
 AND bookings.ends_at > $3::TIMESTAMP WITH TIME ZONE
 AND bookings.status IN ($5::VARCHAR, $6::VARCHAR) LIMIT $4::INTEGER"""
INSERT_BOOKING = """INSERT INTO bookings (resource_id, user_id, starts_at, ends_at, status,
 amount_cents, currency, hold_expires_at, created_at, updated_at) VALUES ($1::BIGINT,
 $2::BIGINT, $3::TIMESTAMP WITH TIME ZONE, $4::TIMESTAMP WITH TIME ZONE, $5::VARCHAR,
 $6::INTEGER, $7::VARCHAR, $8::TIMESTAMP WITH TIME ZONE, $9::TIMESTAMP WITH TIME ZONE,
 $10::TIMESTAMP WITH TIME ZONE) RETURNING bookings.id"""


class BenchError(RuntimeError):
    """Set-up failed or a phase ran out of time: the figures would be meaningless."""


@dataclass(frozen=True)
class Sizes:
    requests: dict[int, int]  # timed requests per cell, by concurrency
    warmup: int  # untimed holds per worker before each cell's clock starts
    prime: int  # untimed holds at concurrency 8 before the first cell, per side

    @classmethod
    def choose(cls, quick: bool) -> Sizes:
        if quick:
            return cls({1: 20, 8: 64, 32: 96}, warmup=1, prime=8)
        return cls({1: 400, 8: 2000, 32: 2000}, warmup=3, prime=400)


def service_settings(database: str) -> dict[str, Any]:
    return {
        "environment": "test",
        "database_url": f"{PG_SERVER}/{database}",
        "redis_key_prefix": f"bench-{database}",
        # Holds never call the provider; readiness probes it at the discard port, not at a
        # provider someone else may be running on the default one.
        "stripe_api_base": "http://127.0.0.1:9",
        "jwt_secret": f"bench-only-jwt-secret-{uuid.uuid4().hex}",
        "access_token_ttl_s": 3600.0,
        # The limiter still runs (its Redis round trip is part of every hold) but must not
        # turn a benchmark away.
        "rate_limit_per_minute": 10_000_000,
        "db_pool_size": POOL_SIZE,
        "db_max_overflow": POOL_OVERFLOW,
        "db_pool_timeout_s": POOL_TIMEOUT_S,
        "db_statement_timeout_s": STATEMENT_TIMEOUT_S,
        "log_level": "warning",
    }


# -- the world: database, users, resources ---------------------------------------------------


async def create_database(name: str, users: int) -> tuple[list[int], str]:
    """Create and migrate the database, insert ``users`` customers; (their ids, PG version)."""
    admin = await asyncpg.connect(f"{PG_SERVER}/postgres", timeout=5, command_timeout=60)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        version = str(await admin.fetchval("SHOW server_version")).split()[0]
    finally:
        await admin.close()
    engine = create_async_engine(async_url(f"{PG_SERVER}/{name}"), poolclass=NullPool)
    try:
        await migrate(engine)
    finally:
        await engine.dispose()
    conn = await asyncpg.connect(f"{PG_SERVER}/{name}", timeout=5)
    try:
        rows = await conn.fetch(
            "INSERT INTO users (email, password_hash, role, tier, created_at) "
            "SELECT 'bench' || g || '@example.invalid', 'scrypt$00$00', 'customer', 'normal', "
            "now() FROM generate_series(1, $1::int) g RETURNING id",
            users,
        )
    finally:
        await conn.close()
    return [int(row["id"]) for row in rows], version


async def drop_database(name: str) -> None:
    admin = await asyncpg.connect(f"{PG_SERVER}/postgres", timeout=5, command_timeout=60)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def new_resources(conn: Any, count: int) -> list[int]:
    rows = await conn.fetch(
        "INSERT INTO resources (kind, name, hourly_rate_cents, created_at) "
        "SELECT 'guide', 'bench ' || g, $2::int, now() FROM generate_series(1, $1::int) g "
        "RETURNING id",
        count,
        RATE_CENTS,
    )
    return [int(row["id"]) for row in rows]


Span = tuple[datetime, datetime]
_BASE = (datetime.now(UTC) + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)


def span(k: int) -> Span:
    """The k-th one-hour range from tomorrow on; worker ranges never overlap each other."""
    start = _BASE + timedelta(hours=k)
    return start, start + timedelta(hours=1)


# -- the service process ---------------------------------------------------------------------


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when this process dies, even by SIGKILL (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class ServiceProcess:
    """One ``bookings serve`` process on 127.0.0.1; its log (warnings and worse) kept aside."""

    def __init__(self, settings: dict[str, Any]) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BOOKINGS_")}
        env.update({f"BOOKINGS_{k.upper()}": str(v) for k, v in settings.items()})
        env["PYTHONUNBUFFERED"] = "1"
        self._log = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed in stop()
        command = [sys.executable, "-m", "bookings", "serve", "--host", "127.0.0.1",
                   "--port", "0", "--log-level", "warning"]  # fmt: skip
        linux = sys.platform == "linux"
        self.proc = subprocess.Popen(  # noqa: S603 - our interpreter and CLI, fixed arguments
            command,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env=env,
            preexec_fn=_die_with_parent if linux else None,  # noqa: PLW1509 - one C call
        )
        self.url = ""

    def start(self) -> ServiceProcess:
        self.url = self._ready_url()
        deadline = time.monotonic() + START_LIMIT_S
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/health/live", timeout=2).status_code == 200:
                    return self
            time.sleep(0.1)
        raise BenchError("the service never answered /health/live")

    def _ready_url(self) -> str:
        out = self.proc.stdout
        assert out is not None
        deadline = time.monotonic() + START_LIMIT_S
        with selectors.DefaultSelector() as selector:
            selector.register(out, selectors.EVENT_READ)
            while selector.select(timeout=max(0.0, deadline - time.monotonic())):
                line = out.readline()
                if not line:
                    break
                if line.startswith(READY_PREFIX):
                    return line[len(READY_PREFIX) :].strip()
        tail = " | ".join(self.log_lines()[-3:])
        raise BenchError(f"the service did not start (exit code {self.proc.poll()}): {tail}")

    def cpu_s(self) -> float | None:
        return cpu_seconds(self.proc.pid)

    def log_lines(self) -> list[str]:
        self._log.flush()
        self._log.seek(0)
        return self._log.read().splitlines()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (Linux ``/proc``), else None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- the two sides ---------------------------------------------------------------------------

Attempt = Callable[[int, Span], Awaitable[str]]


class Side(Protocol):
    name: str

    def attempt_for(self, worker: int) -> Attempt:
        """A hold by worker ``worker``: ``"201"``, ``"409"`` (taken) or a named other answer."""
        ...


def _label(response: httpx.Response) -> str:
    if response.status_code == 201:
        return CREATED
    try:
        body = response.json()
    except ValueError:
        body = None
    code = body.get("error") if isinstance(body, dict) else None
    if response.status_code == 409 and code == "slot_taken":
        return TAKEN
    return f"{response.status_code} {code or '-'}"


class ServiceSide:
    name = "service"

    def __init__(self, url: str, tokens: list[str]) -> None:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        self._clients = [
            httpx.AsyncClient(
                base_url=url,
                limits=limits,
                timeout=REQUEST_TIMEOUT_S,
                headers={"Authorization": f"Bearer {token}"},
            )
            for token in tokens
        ]

    def attempt_for(self, worker: int) -> Attempt:
        client = self._clients[worker]

        async def attempt(resource_id: int, when: Span) -> str:
            body = {
                "resource_id": resource_id,
                "starts_at": when[0].isoformat(),
                "ends_at": when[1].isoformat(),
            }
            try:
                return _label(await client.post("/bookings", json=body))
            except httpx.HTTPError as error:
                return type(error).__name__

        return attempt

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()


class _RefusedError(Exception):
    """Rolls the direct transaction back, as the service's ``SlotTaken`` / ``NotFound`` do."""

    def __init__(self, label: str) -> None:
        super().__init__(label)
        self.label = label


async def _no_reset(conn: Any) -> None:
    """The service's pool returns a connection without a round trip; so does this one."""


class DirectSide:
    name = "direct"

    def __init__(self, pool: Any, users: list[int], settings: Settings) -> None:
        self._pool = pool
        self._users = users
        self._settings = settings  # the service's: the same hold TTL and currency

    def attempt_for(self, worker: int) -> Attempt:
        user = self._users[worker]

        async def attempt(resource_id: int, when: Span) -> str:
            try:
                await self._hold(user, resource_id, when)
            except _RefusedError as refused:
                return refused.label
            except asyncpg.IntegrityConstraintViolationError:
                return TAKEN  # the exclusion constraint; the service answers 409 too
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as e:
                return type(e).__name__
            return CREATED

        return attempt

    async def _hold(self, user: int, resource_id: int, when: Span) -> None:
        starts, ends = when
        now = datetime.now(UTC)
        async with self._pool.acquire(timeout=POOL_TIMEOUT_S) as conn, conn.transaction():
            resource = await conn.fetchrow(LOCK_RESOURCE, resource_id)
            if resource is None:
                raise _RefusedError("404 resource_not_found")
            await conn.execute(
                RELEASE_STALE, "expired", now, resource_id, ends, starts, "held", now
            )
            taken = await conn.fetchval(
                FIRST_OVERLAP, resource_id, ends, starts, 1, "confirmed", "held"
            )
            if taken is not None:
                raise _RefusedError(TAKEN)
            amount = price_cents(TimeRange(starts, ends), resource["hourly_rate_cents"])
            expires = now + timedelta(seconds=self._settings.hold_ttl_s)
            await conn.fetchval(
                INSERT_BOOKING, resource_id, user, starts, ends, "held", amount,
                self._settings.currency, expires, now, now,
            )  # fmt: skip


async def direct_pool(database: str) -> Any:
    statement_ms = str(int(STATEMENT_TIMEOUT_S * 1000))
    return await asyncpg.create_pool(
        f"{PG_SERVER}/{database}",
        min_size=POOL_SIZE,
        max_size=POOL_SIZE + POOL_OVERFLOW,
        reset=_no_reset,
        timeout=1.0,
        command_timeout=STATEMENT_TIMEOUT_S + 1.0,
        server_settings={
            "statement_timeout": statement_ms,
            "lock_timeout": statement_ms,
            "application_name": "bookings-bench-direct",
        },
    )


# -- cells -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    shape: str
    total: int
    own: list[int]  # a resource per worker: the distinct holds and every warm-up
    hot: int  # the one resource every contended request holds

    @property
    def concurrency(self) -> int:
        return len(self.own)


@dataclass(frozen=True)
class Outcome:
    latencies: list[float]  # seconds, sorted
    answers: Counter[str]
    elapsed: float
    local_cpu_s: float
    server_cpu_s: float | None

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.elapsed

    def ms(self, q: float) -> float:
        """The q-quantile (nearest rank) in milliseconds."""
        rank = max(1, math.ceil(q * len(self.latencies)))
        return self.latencies[rank - 1] * 1000

    @property
    def others(self) -> Counter[str]:
        return Counter({k: n for k, n in self.answers.items() if k not in (CREATED, TAKEN)})


Results = dict[tuple[str, int], dict[str, Outcome]]  # (shape, concurrency) -> side -> outcome


async def run_cell(side: Side, cell: Cell, warmup: int, service: ServiceProcess) -> Outcome:
    """``cell.total`` timed holds shared by one worker per ``cell.own`` resource; each worker
    first makes ``warmup`` untimed holds, then all start together."""
    claim = itertools.count()
    latencies: list[float] = []
    answers: Counter[str] = Counter()
    ready = asyncio.Barrier(cell.concurrency + 1)
    stop_at = time.perf_counter() + PHASE_LIMIT_S
    last = 0.0

    async def worker(index: int) -> None:
        nonlocal last
        attempt, own = side.attempt_for(index), cell.own[index]
        for k in range(warmup):
            if (answer := await attempt(own, span(k))) != CREATED:
                raise BenchError(f"{side.name}: a warm-up hold answered {answer}")
        await ready.wait()
        for k in itertools.count(warmup):
            if next(claim) >= cell.total or time.perf_counter() > stop_at:
                return
            target = (own, span(k)) if cell.shape == "distinct" else (cell.hot, span(0))
            began = time.perf_counter()
            answer = await attempt(*target)
            last = time.perf_counter()
            latencies.append(last - began)
            answers[answer] += 1

    try:
        async with asyncio.timeout(PHASE_LIMIT_S + 3 * REQUEST_TIMEOUT_S), asyncio.TaskGroup() as g:
            for index in range(cell.concurrency):
                g.create_task(worker(index))
            await ready.wait()
            started, cpu0, server0 = time.perf_counter(), time.process_time(), service.cpu_s()
    except TimeoutError:
        raise BenchError(f"{side.name} {cell.shape} c={cell.concurrency} hung") from None
    except ExceptionGroup as group:  # a worker's BenchError (or a bug), out of the TaskGroup
        where = f"{side.name} {cell.shape} c={cell.concurrency}"
        raise BenchError(f"{where}: {group.exceptions[0]!r}") from group
    server1 = service.cpu_s()
    if len(latencies) < cell.total:
        raise BenchError(
            f"{side.name} {cell.shape} c={cell.concurrency}: only {len(latencies)} of "
            f"{cell.total} requests within {PHASE_LIMIT_S:.0f} s"
        )
    server = server1 - server0 if server0 is not None and server1 is not None else None
    return Outcome(sorted(latencies), answers, last - started, time.process_time() - cpu0, server)


# -- the run ---------------------------------------------------------------------------------


async def first_hold(service: ServiceSide, conn: Any) -> None:
    """The service is up once one hold succeeds (bounded)."""
    resource = (await new_resources(conn, 1))[0]
    deadline = time.monotonic() + START_LIMIT_S
    answer = ""
    while time.monotonic() < deadline:
        if (answer := await service.attempt_for(0)(resource, span(0))) == CREATED:
            return
        await asyncio.sleep(0.2)
    raise BenchError(f"the service never held a range (last answer: {answer})")


async def readiness(url: str) -> str:
    async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S) as client:
        body = (await client.get(f"{url}/health/ready")).json()
    checks = body.get("checks", {})
    parts = [f"{name} {'ok' if check.get('ok') else 'down'}" for name, check in checks.items()]
    return f"{body.get('status')} ({', '.join(parts)})"


async def measure(
    database: str, users: list[int], settings: Settings, service: ServiceProcess, sizes: Sizes
) -> Results:
    tokens = Tokens(settings, lambda: datetime.now(UTC))
    access = [tokens.issue(Principal(u, Role.CUSTOMER, Tier.NORMAL)).access_token for u in users]
    conn = await asyncpg.connect(f"{PG_SERVER}/{database}", timeout=5)
    pool = await direct_pool(database)
    via_http = ServiceSide(service.url, access)
    sides: list[Side] = [via_http, DirectSide(pool, users, settings)]
    results: Results = {}
    try:
        await first_hold(via_http, conn)
        for side in sides:  # prime both: pools filled, statements prepared, caches warm
            cell = Cell("distinct", sizes.prime, await new_resources(conn, 8), 0)
            await run_cell(side, cell, sizes.warmup, service)
        for shape, concurrency in itertools.product(SHAPES, CONCURRENCY):
            for side in sides:
                resources = await new_resources(conn, concurrency + 1)
                cell = Cell(shape, sizes.requests[concurrency], resources[1:], resources[0])
                outcome = await run_cell(side, cell, sizes.warmup, service)
                results.setdefault((shape, concurrency), {})[side.name] = outcome
    finally:
        await via_http.aclose()
        await pool.close()
        await conn.close()
    return results


# -- report ----------------------------------------------------------------------------------


def _cpu(seconds: float | None, count: int) -> str:
    return f"{seconds * 1000 / count:>8.2f}" if seconds is not None else f"{'n/a':>8}"


def print_report(rows: Results) -> None:
    print("(a) requests per second (distinct: holds/s; contended: 1 hold + 409s per second)")
    print(f"  {'shape':<10}{'conc':>5}{'requests':>10}{'service':>10}{'direct':>10}"
          f"{'svc/direct':>12}")  # fmt: skip
    for (shape, conc), pair in rows.items():
        svc, direct = pair["service"], pair["direct"]
        print(
            f"  {shape:<10}{conc:>5}{len(svc.latencies):>10}{svc.rate:>10.0f}"
            f"{direct.rate:>10.0f}{svc.rate / direct.rate:>12.2f}"
        )
    print("\n(b) latency per request, ms")
    print(f"  {'shape':<10}{'conc':>5}   {'service p50':>11}{'p95':>7}{'p99':>7}"
          f"   {'direct p50':>10}{'p95':>7}{'p99':>7}")  # fmt: skip
    for (shape, conc), pair in rows.items():
        svc, direct = pair["service"], pair["direct"]
        print(
            f"  {shape:<10}{conc:>5}   {svc.ms(0.5):>11.1f}{svc.ms(0.95):>7.1f}{svc.ms(0.99):>7.1f}"
            f"   {direct.ms(0.5):>10.1f}{direct.ms(0.95):>7.1f}{direct.ms(0.99):>7.1f}"
        )
    print("\n(c) answers, and CPU ms per request (service: server process, client; direct: this)")
    print(f"  {'shape':<10}{'conc':>5}   {'svc 201':>7}{'409':>6}{'other':>6}   {'dir 201':>7}"
          f"{'409':>6}{'other':>6}   {'server':>8}{'client':>8}{'direct':>8}")  # fmt: skip
    for (shape, conc), pair in rows.items():
        svc, direct = pair["service"], pair["direct"]
        counts = "   ".join(
            f"{o.answers[CREATED]:>7}{o.answers[TAKEN]:>6}{sum(o.others.values()):>6}"
            for o in (svc, direct)
        )
        n, m = len(svc.latencies), len(direct.latencies)
        cpu = _cpu(svc.server_cpu_s, n) + _cpu(svc.local_cpu_s, n) + _cpu(direct.local_cpu_s, m)
        print(f"  {shape:<10}{conc:>5}   {counts}   {cpu}")


def judge(rows: Results) -> tuple[list[str], list[str]]:
    """(notes, problems): every other answer is noted; a contended range held other than
    once, a distinct hold refused, or other answers in more than 5% of a cell's requests are
    problems (a few 503s from a pool wait on a loaded machine are not)."""
    notes: list[str] = []
    problems: list[str] = []
    for (shape, conc), pair in rows.items():
        for name, o in pair.items():
            where = f"{name} {shape} c={conc}"
            notes += [f"{where}: {answer} x{n}" for answer, n in sorted(o.others.items())]
            if sum(o.others.values()) * 20 > len(o.latencies):
                problems.append(f"{where}: over 5% of the answers were neither 201 nor 409")
            if shape == "contended" and o.answers[CREATED] != 1:
                problems.append(f"{where}: the one range was held {o.answers[CREATED]} times")
            if shape == "distinct" and o.answers[TAKEN]:
                problems.append(f"{where}: {o.answers[TAKEN]} holds of a free range refused")
    return notes, problems


def print_header(version: str, readiness: str) -> None:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"booking_throughput bench: Python {platform.python_version()}, PostgreSQL {version}, "
        f"{platform.machine()} x{len(os.sched_getaffinity(0))} CPUs, load average {load:.2f} "
        "at start\n"
        f"  service: one `bookings serve` process (uvloop, db pool {POOL_SIZE}+{POOL_OVERFLOW}), "
        f"readiness {readiness}\n"
        "  client: httpx workers in this process, one connection each; direct: asyncpg pool "
        f"of {POOL_SIZE + POOL_OVERFLOW} in this process; everything on 127.0.0.1\n"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a small smoke run (seconds)")
    parser.add_argument(
        "--no-access-log",
        action="store_true",
        help="the service without its access_log table (to price the access log)",
    )
    parser.add_argument(
        "--pool-reserved",
        type=int,
        default=None,
        metavar="N",
        help="connections kept from public traffic (default: the service's own, 3; "
        "0 prices the reserve)",
    )
    return parser.parse_args(argv)


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # unwinds through the same clean-up as Ctrl-C


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = Sizes.choose(args.quick)
    signal.signal(signal.SIGTERM, _terminate)
    database = f"bench_bookings_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    values = service_settings(database)
    values["access_log_enabled"] = not args.no_access_log
    if args.pool_reserved is not None:
        values["db_pool_reserved"] = args.pool_reserved
    began = time.perf_counter()
    service: ServiceProcess | None = None
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            users, version = runner.run(create_database(database, max(CONCURRENCY)))
            service = ServiceProcess(values)
            service.start()
            print_header(version, runner.run(readiness(service.url)))
            results = runner.run(measure(database, users, Settings(**values), service, sizes))
        print_report(results)
        logged = service.log_lines()
    except BenchError as exc:
        print(f"\nbench failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nbench interrupted", file=sys.stderr)
        return 130
    finally:
        if service is not None:
            service.stop()
        try:
            asyncio.run(drop_database(database))
        except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
            print(f"could not drop database {database}: {exc}", file=sys.stderr)
    print(
        f"\nservice log: {len(logged)} lines at warning or above"
        + (f"; first: {logged[0][:160]}" if logged else "")
    )
    notes, problems = judge(results)
    for note in notes:
        print(f"other answer: {note}")
    for problem in problems:
        print(f"PROBLEM {problem}")
    print(f"total bench time {time.perf_counter() - began:.1f} s")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
