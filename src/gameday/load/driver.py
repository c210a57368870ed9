"""The load driver: every request becomes exactly one operation of the history.

Three shapes cover the drill: ``call`` (one operation, for scripted steps), ``burst`` (N
requests released at one instant, for races on one slot or one idempotency key) and
``steady`` (open-loop arrivals at a fixed rate, for baseline and fault phases). Open loop
because a closed loop slows down with the target and so hides the very latency a fault
causes (coordinated omission); an arrival that finds every slot busy is counted as dropped,
not queued, so a stalled target cannot build a backlog that floods it on recovery.

What is recorded follows the history's rules: an answer's status decides ``ok``/``fail``/
``info``; a request never written is ``fail``; one written without a complete answer, or
cancelled while in flight, is ``info``. Everything is bounded: in count (``max_ops`` raises
``LoadLimit`` instead of sending), in time (every request has a timeout, ``steady`` drains
for at most ``drain_s``) and in memory (``Stats``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
import structlog

from gameday.history.model import Op, OpType, outcome_of
from gameday.history.store import HistoryWriter
from gameday.load.client import HttpClient
from gameday.load.connection import Response
from gameday.load.errors import ConnectError, LoadLimit, ResponseLost
from gameday.load.stats import Stats, Window

log = structlog.get_logger("gameday.load")
T = TypeVar("T")
ValueOf = Callable[[Response], dict[str, Any] | None]
_CANCEL_WAIT_S = 5.0


@dataclass(frozen=True, slots=True)
class Call:
    """One HTTP operation as the history records it. A non-empty ``idempotency_key`` is also
    sent as the ``Idempotency-Key`` header (unless ``headers`` has one), so the key in the
    history is the key on the wire."""

    f: str
    method: str
    path: str
    endpoint: str
    headers: Mapping[str, str] = field(default_factory=dict)
    json: Any = None
    body: bytes | None = None
    idempotency_key: str = ""
    target: str = ""

    def __post_init__(self) -> None:
        key = self.idempotency_key
        if key and all(name.lower() != "idempotency-key" for name in self.headers):
            object.__setattr__(self, "headers", {**self.headers, "Idempotency-Key": key})


class Driver:
    """Sends calls through an ``HttpClient`` and records each one; ``scenario`` and ``phase``
    may be changed between phases and are copied into every operation recorded after."""

    def __init__(
        self,
        history: HistoryWriter,
        *,
        scenario: str = "",
        phase: str = "",
        max_ops: int = 1_000_000,
        timeout_s: float = 10.0,
    ) -> None:
        self.history = history
        self.scenario = scenario
        self.phase = phase
        self.max_ops = max_ops
        self.timeout_s = timeout_s
        self.ops = 0
        """Calls sent (or attempted), the count ``max_ops`` bounds."""
        self.dropped = 0
        """Arrivals of ``steady`` skipped because every slot was busy."""
        self.flow_errors: Counter[str] = Counter()
        """Flows of ``steady`` that raised, by exception class: bugs in a scenario's flow."""
        self.stats = Stats()

    async def call(
        self, client: HttpClient, call: Call, process: str, *, value: ValueOf | None = None
    ) -> Op:
        """Send ``call`` and record it; ``value(response)`` is what the checkers will need."""
        if self.ops >= self.max_ops:
            raise LoadLimit(f"max_ops={self.max_ops} reached")
        self.ops += 1
        t0 = self.history.now()
        try:
            response = await client.request(
                call.method,
                call.path,
                headers=call.headers,
                json=call.json,
                body=call.body,
                timeout_s=self.timeout_s,
            )
        except ConnectError as exc:
            return self._record(call, process, t0, "fail", 0, error=type(exc).__name__)
        except ResponseLost as exc:
            return self._record(call, process, t0, "info", 0, error=type(exc).__name__)
        except asyncio.CancelledError:
            self._record(call, process, t0, "info", 0, error="cancelled")
            raise
        status = response.status
        kind = outcome_of(status)
        error = "" if kind == "ok" else _error_code(response.body)
        rid = response.headers.get("x-request-id", "")
        try:
            found = None if value is None else value(response)
        except Exception:
            self._record(call, process, t0, kind, status, correlation_id=rid, error=error)
            raise  # the operation did happen, so it is recorded before the flow's bug surfaces
        return self._record(
            call, process, t0, kind, status, correlation_id=rid, error=error, value=found
        )

    async def burst(
        self,
        client: HttpClient,
        calls: Sequence[Call],
        *,
        process_prefix: str = "b",
        value: ValueOf | None = None,
    ) -> list[Op]:
        """Release every call at one instant: connections are opened first, every task waits
        on one event, and setting it lets all of them write in one turn of the loop."""
        if self.ops + len(calls) > self.max_ops:
            raise LoadLimit(f"a burst of {len(calls)} would pass max_ops={self.max_ops}")
        with contextlib.suppress(ConnectError):  # then each call fails and is recorded as fail
            await client.warm(len(calls))
        gate = asyncio.Event()

        async def one(i: int, call: Call) -> Op:
            await gate.wait()
            return await self.call(client, call, f"{process_prefix}{i}", value=value)

        tasks = [asyncio.create_task(one(i, call)) for i, call in enumerate(calls)]
        try:
            await asyncio.sleep(0)  # every task runs up to the gate
            gate.set()
            if tasks:
                await asyncio.wait(tasks)
        finally:
            await _cancel_all(tasks)
        return [task.result() for task in tasks]

    async def steady(
        self,
        flow: Callable[[int], Awaitable[None]],
        *,
        rate: float,
        duration_s: float,
        concurrency: int = 64,
        drain_s: float | None = None,
    ) -> int:
        """Start ``flow(i)`` at ``start + i / rate`` for ``duration_s``; return how many started.
        Arrivals stop early once ``max_ops`` is reached (a flow's ``LoadLimit`` ends the run,
        it is not an error). At the end, flows in flight get ``drain_s`` (default: the request
        timeout) to finish, then are cancelled, which records their requests as ``info``."""
        if rate <= 0 or duration_s <= 0 or concurrency < 1:
            raise ValueError("rate and duration_s must be > 0 and concurrency >= 1")
        loop = asyncio.get_running_loop()
        flows = _Flows(self.flow_errors)
        started, start = 0, loop.time()
        try:
            for i in itertools.count():
                if i / rate >= duration_s:
                    break
                if (delay := start + i / rate - loop.time()) > 0:
                    await asyncio.sleep(delay)
                if flows.limited or self.ops >= self.max_ops:
                    break
                if len(flows.running) >= concurrency:
                    self.dropped += 1
                    continue
                flows.start(loop, flow(i))
                started += 1
            if flows.running:
                drain = self.timeout_s if drain_s is None else drain_s
                await asyncio.wait(flows.running, timeout=drain)
        finally:
            await _cancel_all(flows.running)
        if self.flow_errors:
            log.warning("load flows raised", errors=dict(self.flow_errors))
        return started

    def window(self, seconds: float = 5.0) -> Window:
        """Requests/s, error rate (5xx and no answer) and p95 over the last ``seconds``."""
        return self.stats.window(self.history.now(), seconds)

    def summary(self) -> dict[str, Any]:
        """For the report (JSON-able), per endpoint: count, statuses, p50/p95/p99/max in ms.
        The totals are attributes: ``ops``, ``dropped``, ``flow_errors``."""
        return self.stats.summary()

    def _record(
        self,
        call: Call,
        process: str,
        t0: float,
        kind: OpType,
        status: int,
        *,
        correlation_id: str = "",
        error: str = "",
        value: dict[str, Any] | None = None,
    ) -> Op:
        op = self.history.record(
            type=kind,
            f=call.f,
            process=process,
            endpoint=call.endpoint,
            t0=t0,
            status=status,
            target=call.target,
            scenario=self.scenario,
            phase=self.phase,
            correlation_id=correlation_id,
            idempotency_key=call.idempotency_key,
            error=error,
            value=value,
        )
        self.stats.add(call.endpoint, kind, status, t0, op.t1)
        return op


class _Flows:
    """The flows of one ``steady`` run: those in flight, and whether one reached max_ops."""

    def __init__(self, errors: Counter[str]) -> None:
        self.running: set[asyncio.Task[None]] = set()
        self.limited = False
        self.errors = errors

    def start(self, loop: asyncio.AbstractEventLoop, work: Awaitable[None]) -> None:
        task = loop.create_task(work if isinstance(work, Coroutine) else _as_coroutine(work))
        self.running.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self.running.discard(task)
        error = None if task.cancelled() else task.exception()
        if isinstance(error, LoadLimit):
            self.limited = True
        elif error is not None:
            self.errors[type(error).__name__] += 1


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run the load's coroutine on uvloop when it is installed (about twice the requests per
    second of the default loop), else on asyncio's own."""
    try:
        import uvloop  # noqa: PLC0415 - optional at run time
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def _error_code(body: bytes) -> str:
    """The ``error`` code of a JSON error answer (``{"error": "slot_taken", ...}``), else ""."""
    if not body.startswith(b"{"):
        return ""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ""
    code = data.get("error") if isinstance(data, dict) else None
    return code if isinstance(code, str) else ""


async def _as_coroutine(awaitable: Awaitable[None]) -> None:
    await awaitable


async def _cancel_all(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel what is still running and wait (bounded) for it to record its cancellation."""
    pending = [task for task in tasks if not task.done()]
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=_CANCEL_WAIT_S)
