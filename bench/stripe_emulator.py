"""Throughput of the Stripe emulator, measured through the official SDK.

    .venv/bin/python bench/stripe_emulator.py [--payments N] [--webhook-payments K] [--quick]

Starts an ``EmulatorServer`` in this process on 127.0.0.1 and prints:

(a) requests per second at concurrency 1 and 16 (threads, each with its own ``StripeClient``)
    for a trivial ``GET /v1/customers/{id}`` (the baseline) and for a PaymentIntent created
    and confirmed in one call with ``pm_card_visa``, with the ratio payment / baseline;
(b) flatness: over N payments at concurrency 16, the rate of the first and of the last
    thousand, and their ratio (state is O(1) per request, so this should stay near 1);
(c) webhook deliveries per second to a local receiver that answers 200 at once: while K
    payments are being made, and as a backlog released at once (deliveries held back with
    the ``webhook_delay_s`` fault switch, then the emulator clock advanced past the delay).

The client threads, the emulator's event loop and the receiver share one process (and one
GIL), so absolute figures understate a separate emulator process; the ratios to the trivial
GET measured in the same run are what compare across machines. Every phase is bounded in
count and in time; nothing leaves the loopback interface.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file shares its name with the package it measures, and ``python bench/<file>`` puts
# bench/ first on sys.path: drop it so that ``import stripe_emulator`` finds the package.
_BENCH_DIR = Path(__file__).resolve().parent
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != _BENCH_DIR]

# The imports below must follow the sys.path fix above.
import argparse  # noqa: E402
import itertools  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from types import TracebackType  # noqa: E402

import stripe  # noqa: E402
import uvicorn  # noqa: E402
from starlette.types import Receive, Scope, Send  # noqa: E402
from stripe.params import PaymentIntentCreateParams  # noqa: E402

from stripe_emulator import EmulatorServer  # noqa: E402
from stripe_emulator.server import bind, url_of  # noqa: E402

KEY = "sk_test_bench_stripe_emulator"
PAYMENT: PaymentIntentCreateParams = {
    "amount": 1000,
    "currency": "usd",
    "payment_method": "pm_card_visa",
    "confirm": True,
}
PHASE_LIMIT_S = 300.0
DELIVERY_LIMIT_S = 180.0
HIGH = 16


class BenchError(RuntimeError):
    """A request failed or a phase ran out of time: the figures would be meaningless."""


@dataclass(frozen=True)
class Sizes:
    trivial_1: int
    trivial_16: int
    pay_1: int
    pay_16: int
    flat: int
    webhook_payments: int

    @classmethod
    def choose(cls, payments: int, webhook_payments: int | None, quick: bool) -> Sizes:
        if quick:
            return cls(100, 400, 100, 400, min(payments, 1200), webhook_payments or 100)
        return cls(1000, 4000, 1000, 4000, payments, webhook_payments or 2000)


@dataclass(frozen=True)
class Run:
    """Completion times (``perf_counter``) of one phase's requests, in order."""

    started: float
    stamps: list[float]

    @property
    def count(self) -> int:
        return len(self.stamps)

    @property
    def elapsed(self) -> float:
        return self.stamps[-1] - self.started

    @property
    def rate(self) -> float:
        return self.count / self.elapsed

    def window_rate(self, first: int, size: int) -> float:
        """Requests per second between completion ``first`` and completion ``first + size``."""
        return size / (self.stamps[first + size] - self.stamps[first])


Op = Callable[[stripe.StripeClient], None]


def make_client(url: str) -> stripe.StripeClient:
    return stripe.StripeClient(KEY, base_addresses={"api": url}, max_network_retries=0)


def run_threads(url: str, op: Op, total: int, concurrency: int, warmup: Op) -> Run:
    """``total`` calls of ``op`` shared by ``concurrency`` threads, each with its own client.

    Each thread makes one ``warmup`` call (opening its connection) before the clock starts.
    """
    claim = itertools.count()
    stamps: list[float] = []
    failures: list[BaseException] = []
    ready = threading.Barrier(concurrency + 1)
    stop_at = time.perf_counter() + PHASE_LIMIT_S

    def worker() -> None:
        client = make_client(url)
        try:
            warmup(client)
        except (stripe.StripeError, BenchError) as exc:
            failures.append(exc)
        ready.wait()
        while next(claim) < total and time.perf_counter() < stop_at and not failures:
            try:
                op(client)
            except (stripe.StripeError, BenchError) as exc:
                failures.append(exc)
                return
            stamps.append(time.perf_counter())

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    ready.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    if failures:
        raise BenchError(f"a request failed: {failures[0]!r}")
    if len(stamps) < total:
        raise BenchError(f"only {len(stamps)} of {total} requests within {PHASE_LIMIT_S:.0f} s")
    return Run(started, sorted(stamps))


def pay(client: stripe.StripeClient) -> None:
    intent = client.v1.payment_intents.create(params=PAYMENT)
    if intent.status != "succeeded":
        raise BenchError(f"{intent.id} ended {intent.status}, not succeeded")


def touch(client: stripe.StripeClient) -> None:
    """The warm-up call: opens the thread's connection, needs no objects."""
    client.v1.payment_intents.list(params={"limit": 1})


def trivial(customer: str) -> Op:
    def retrieve(client: stripe.StripeClient) -> None:
        client.v1.customers.retrieve(customer)

    return retrieve


# -- the webhook receiver ---------------------------------------------------------------------


class Sink:
    """A minimal ASGI webhook receiver under uvicorn on 127.0.0.1: 200 to everything, counted."""

    def __init__(self) -> None:
        self.accepted = 0
        self._sock = bind("127.0.0.1", 0)
        self.url = f"{url_of(self._sock)}/webhooks/stripe"
        config = uvicorn.Config(
            self,
            log_level="warning",
            access_log=False,
            lifespan="off",
            loop="uvloop",
            http="httptools",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        more = True
        while more:
            more = bool((await receive()).get("more_body", False))
        self.accepted += 1  # only this server's event loop writes it
        headers = [(b"content-length", b"0")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    def __enter__(self) -> Sink:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise BenchError("the webhook receiver did not start")
            time.sleep(0.01)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()


def wait_for(sink: Sink, expected: int) -> float:
    """Block until the receiver has accepted ``expected`` deliveries; the time it happened."""
    deadline = time.perf_counter() + DELIVERY_LIMIT_S
    while sink.accepted < expected:
        if time.perf_counter() > deadline:
            raise BenchError(
                f"{sink.accepted} of {expected} deliveries in {DELIVERY_LIMIT_S:.0f} s"
            )
        time.sleep(0.002)
    return time.perf_counter()


# -- phases -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Deliveries:
    payments: int
    deliveries: int
    elapsed: float
    after_last_request: float
    pending_after: int

    @property
    def rate(self) -> float:
        return self.deliveries / self.elapsed


def _events(server: EmulatorServer) -> tuple[int, int]:
    """(events emitted, events still waiting for a delivery), read on the emulator's loop."""

    def read() -> tuple[int, int]:
        log = server.emulator.state.log.events
        return len(log), sum(1 for event in log if event.pending)

    return server.call(read)


def settled_pending(server: EmulatorServer, limit_s: float = 10.0) -> int:
    """Events the emulator still counts as undelivered once it has had time to see the 200s."""
    deadline = time.perf_counter() + limit_s
    pending = _events(server)[1]
    while pending and time.perf_counter() < deadline:
        time.sleep(0.01)
        pending = _events(server)[1]
    return pending


def _fresh_endpoint(server: EmulatorServer, sink: Sink) -> None:
    server.reset()
    make_client(server.url).v1.webhook_endpoints.create(
        params={"url": sink.url, "enabled_events": ["*"]}
    )
    sink.accepted = 0


def live_deliveries(server: EmulatorServer, sink: Sink, payments: int) -> Deliveries:
    """Payments at concurrency 16 with delivery running alongside, until every event lands."""
    _fresh_endpoint(server, sink)
    run = run_threads(server.url, pay, payments, HIGH, touch)
    expected, _ = _events(server)
    done = wait_for(sink, expected)
    return Deliveries(
        payments, expected, done - run.started, done - run.stamps[-1], settled_pending(server)
    )


def backlog_deliveries(server: EmulatorServer, sink: Sink, payments: int) -> Deliveries:
    """Deliveries held back by ``webhook_delay_s``, then released at once by the clock."""
    _fresh_endpoint(server, sink)
    server.set_faults(webhook_delay_s=3600.0)
    try:
        run_threads(server.url, pay, payments, HIGH, touch)
        expected, _ = _events(server)
        if sink.accepted:
            raise BenchError("deliveries arrived while they were meant to be held back")
        released = time.perf_counter()
        server.advance_clock(3600.0)
        done = wait_for(sink, expected)
    finally:
        server.clear_faults()
    return Deliveries(payments, expected, done - released, done - released, settled_pending(server))


# -- report -----------------------------------------------------------------------------------


def _row(label: str, concurrency: int, run: Run, baseline: Run | None) -> str:
    ratio = f"{run.rate / baseline.rate:10.2f}" if baseline else f"{'1.00':>10}"
    return f"  {label:<36}{concurrency:>5}{run.count:>10}{run.rate:>10.0f}{ratio}"


def print_rates(trivial_runs: dict[int, Run], pay_runs: dict[int, Run]) -> None:
    print("(a) requests per second through the official SDK")
    print(f"  {'operation':<36}{'conc':>5}{'requests':>10}{'req/s':>10}{'vs GET':>10}")
    for concurrency, run in trivial_runs.items():
        print(_row("GET /v1/customers/{id} (trivial)", concurrency, run, None))
    for concurrency, run in pay_runs.items():
        label = "PaymentIntent create+confirm"
        print(_row(label, concurrency, run, trivial_runs[concurrency]))


def rss_mb() -> float:
    """This process's resident memory now (Linux), else its peak so far."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def print_flatness(run: Run, held: tuple[int, int], grown_mb: float, baseline: Run) -> None:
    window = min(1000, run.count // 4)
    first, last = run.window_rate(0, window), run.window_rate(run.count - window - 1, window)
    print(f"\n(b) flatness over {run.count} payments at concurrency {HIGH}")
    print(f"  first {window:<6} {first:>8.0f} payments/s")
    print(f"  last  {window:<6} {last:>8.0f} payments/s")
    print(f"  last / first {last / first:>8.2f}")
    print(
        f"  overall      {run.rate:>8.0f} payments/s   ({run.rate / baseline.rate:.2f} x trivial)"
    )
    per_payment_kb = grown_mb * 1024 / run.count
    print(f"  state held   {run.count} payments, {held[0]} events, {held[1]} pending")
    print(
        f"  memory       +{grown_mb:.0f} MB resident over the run ({per_payment_kb:.1f} KB/payment)"
    )


def print_deliveries(live: Deliveries, backlog: Deliveries, baseline: Run) -> None:
    print("\n(c) webhook deliveries to a local receiver answering 200")
    print(
        f"  {'mode':<34}{'payments':>9}{'deliveries':>11}{'seconds':>9}{'per s':>8}{'pending':>8}"
    )
    for label, found in (
        (f"while paying (conc {HIGH})", live),
        ("backlog released at once", backlog),
    ):
        print(
            f"  {label:<34}{found.payments:>9}{found.deliveries:>11}{found.elapsed:>9.2f}"
            f"{found.rate:>8.0f}{found.pending_after:>8}"
        )
    print(f"  last delivery {live.after_last_request:.2f} s after the last payment answered")
    print(f"  backlog rate / trivial GET rate at conc {HIGH}: {backlog.rate / baseline.rate:.2f}")


def measure(server: EmulatorServer, sizes: Sizes) -> None:
    customer = make_client(server.url).v1.customers.create(params={"name": "bench"}).id
    get = trivial(customer)
    trivial_runs = {
        1: run_threads(server.url, get, sizes.trivial_1, 1, touch),
        HIGH: run_threads(server.url, get, sizes.trivial_16, HIGH, touch),
    }
    pay_runs = {
        1: run_threads(server.url, pay, sizes.pay_1, 1, touch),
        HIGH: run_threads(server.url, pay, sizes.pay_16, HIGH, touch),
    }
    print_rates(trivial_runs, pay_runs)
    server.reset()
    before_mb = rss_mb()
    flat = run_threads(server.url, pay, sizes.flat, HIGH, touch)
    print_flatness(flat, _events(server), rss_mb() - before_mb, trivial_runs[HIGH])
    with Sink() as sink:
        live = live_deliveries(server, sink, sizes.webhook_payments)
        backlog = backlog_deliveries(server, sink, sizes.webhook_payments)
    print_deliveries(live, backlog, trivial_runs[HIGH])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--payments", type=int, default=20_000, help="payments in the flatness run")
    parser.add_argument(
        "--webhook-payments", type=int, default=None, help="payments in each webhook run"
    )
    parser.add_argument("--quick", action="store_true", help="a small smoke run (seconds)")
    args = parser.parse_args(argv)
    if args.payments < 100:
        parser.error("--payments must be at least 100")
    if args.webhook_payments is not None and args.webhook_payments < 1:
        parser.error("--webhook-payments must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = Sizes.choose(args.payments, args.webhook_payments, args.quick)
    print(
        f"stripe_emulator bench: Python {platform.python_version()}, stripe {stripe.VERSION}, "
        f"{platform.machine()} x{len(os.sched_getaffinity(0))} CPUs; SDK clients, "
        "emulator and receiver in one process on 127.0.0.1\n"
    )
    started = time.perf_counter()
    try:
        with EmulatorServer() as server:
            measure(server, sizes)
    except BenchError as exc:
        print(f"\nbench failed: {exc}", file=sys.stderr)
        return 1
    print(f"\ntotal bench time {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
