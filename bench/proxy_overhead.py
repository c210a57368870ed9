"""Cost of the fault proxy with no fault active, next to the same load sent direct in the
same run.

    .venv/bin/python bench/proxy_overhead.py [--quick] [--seconds S] [--rounds N]

Starts the proxy as its own process (``python -m gameday.faults.proxy``, as the drill stack
does), makes one link each to the machine's PostgreSQL (127.0.0.1:5432, user postgres,
trust auth), Redis (127.0.0.1:6379) and a byte sink started by this script, then measures,
direct and through the link, alternating so that drift on the machine hits both sides:

(a) ``pgbench -S -c 8 -j 2``: select-only transactions per second on a scratch database
    ``gameday_bench_proxy`` (``pgbench -i -s 1``; dropped at the end);
(b) ``pgbench -S -c 1``: the latency of each transaction from pgbench's own per-transaction
    log (``-l``): p50 and p99, and what the proxy adds to them;
(c) ``redis-benchmark -t get,set -c 50``: requests per second;
(d) one connection streaming bytes to the sink (a separate process): MB/s.

pgbench, PostgreSQL, Redis, the proxy and this script share the machine's cores, so the
proxy's cost shows as CPU taken from the others. Next to each figure the report gives the
cores busy (from /proc/stat) and the proxy's own CPU per transaction or request (from
/proc/PID/stat); with the cores saturated, the ratio cannot exceed roughly
direct CPU / (direct CPU + proxy CPU) per transaction, which the report states when a
target is missed. Targets (the issue): at least 0.6x pgbench TPS at -c 8 and at most
0.1 ms added to the p50 at -c 1.

Every phase is bounded in time; the proxy and the sink die with this process (Linux
PR_SET_PDEATHSIG and the proxy's --parent-pid), and the database is dropped on any exit
but SIGKILL. About 450 lines, over the module budget: a bench runs as one script and its
parts (processes, the four loads, the report) only make sense together.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import ctypes
import os
import platform
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from gameday.faults.proxy import READY_PREFIX, ProxyClient

DATABASE = "gameday_bench_proxy"
PG_PORT, REDIS_PORT = 5432, 6379
TPS_TARGET, ADDED_P50_TARGET_US = 0.6, 100.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class BenchError(RuntimeError):
    """A step failed; the message says which and why."""


@dataclass(frozen=True)
class Sizes:
    seconds: int
    latency_seconds: int
    rounds: int
    redis_requests: int
    bulk_bytes: int

    @classmethod
    def choose(cls, quick: bool, seconds: int | None, rounds: int | None) -> Sizes:
        base = cls(1, 1, 1, 5_000, 32 << 20) if quick else cls(10, 8, 2, 200_000, 512 << 20)
        return cls(
            seconds or base.seconds,
            seconds or base.latency_seconds,
            rounds or base.rounds,
            base.redis_requests,
            base.bulk_bytes,
        )


# -- processes ---------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when this process dies, even by SIGKILL (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _spawn(
    args: list[str], prefix: str, timeout_s: float = 30.0
) -> tuple[subprocess.Popen[str], str]:
    """A child that prints one line starting with ``prefix`` when ready: (process, rest)."""
    proc = subprocess.Popen(  # noqa: S603 - our interpreter, our module or this script
        [sys.executable, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        preexec_fn=_die_with_parent if sys.platform == "linux" else None,  # noqa: PLW1509 - one C call
    )
    if proc.stdout is None:
        raise BenchError("the child's output is not captured")
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        line = proc.stdout.readline() if selector.select(timeout=timeout_s) else ""
    if not line.startswith(prefix):
        _stop(proc)
        raise BenchError(f"{args[:3]} did not start (said {line!r})")
    return proc, line[len(prefix) :].strip()


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    if proc.stdout is not None:
        proc.stdout.close()


def serve_sink() -> int:
    """``--sink``: count each connection's bytes until EOF, answer the count, repeat."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        print(f"sink on {server.getsockname()[1]}", flush=True)
        buffer = memoryview(bytearray(1 << 20))
        while True:  # until terminated by the bench (or by its death)
            conn, _ = server.accept()
            with conn:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                total = 0
                while count := conn.recv_into(buffer):
                    total += count
                conn.sendall(str(total).encode())


def start_processes(procs: list[subprocess.Popen[str]]) -> tuple[int, dict[str, int], int]:
    """The proxy with a link to each server, and the sink: (proxy pid, link ports, sink port).
    Each process is appended to ``procs`` as soon as it runs, for the caller to stop."""
    proxy, url = _spawn(["-m", "gameday.faults.proxy", "--parent-pid", str(os.getpid())],
                        READY_PREFIX)  # fmt: skip
    procs.append(proxy)
    sink, sink_port = _spawn([__file__, "--sink"], "sink on ")
    procs.append(sink)
    with ProxyClient(url) as client:
        ports = {
            name: int(client.add_link(name, [f"127.0.0.1:{port}"])["listen_port"])
            for name, port in (("pg", PG_PORT), ("redis", REDIS_PORT), ("bulk", int(sink_port)))
        }
    return proxy.pid, ports, int(sink_port)


def _run(command: list[str], timeout_s: float) -> str:
    try:
        done = subprocess.run(  # noqa: S603 - the PostgreSQL and Redis tools, fixed arguments
            command, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BenchError(f"{command[0]}: {exc}") from None
    if done.returncode != 0:
        raise BenchError(f"{' '.join(command[:3])} failed: {done.stderr.strip()[-400:]}")
    return done.stdout


def _psql(statement: str) -> None:
    _run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-q", "-c", statement], 60)


def prepare_database() -> None:
    _psql(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
    _psql(f"CREATE DATABASE {DATABASE}")
    _run(["pgbench", "-i", "-q", "-s", "1", "-h", "127.0.0.1", "-U", "postgres", DATABASE], 120)


def drop_database() -> None:
    try:
        _psql(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
    except BenchError as exc:
        print(f"could not drop database {DATABASE}: {exc}", file=sys.stderr)


# -- CPU accounting ----------------------------------------------------------------------------


def _machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies over all cores since boot."""
    fields = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields[:8]) - idle, sum(fields[:8])


def _process_cpu_s(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(stat[11]) + int(stat[12])) / CLOCK_TICKS


@dataclass
class Usage:
    cores_busy: float = 0.0
    proxy_cpu_s: float = 0.0


@contextlib.contextmanager
def measuring(proxy_pid: int) -> Iterator[Usage]:
    usage = Usage()
    busy0, total0 = _machine_cpu()
    proxy0 = _process_cpu_s(proxy_pid)
    yield usage
    busy1, total1 = _machine_cpu()
    usage.cores_busy = (busy1 - busy0) / max(total1 - total0, 1.0) * (os.cpu_count() or 1)
    usage.proxy_cpu_s = _process_cpu_s(proxy_pid) - proxy0


# -- the loads ---------------------------------------------------------------------------------


@dataclass
class Cell:
    """One measurement: the figure, and the CPU it took."""

    value: float
    usage: Usage
    extra: dict[str, float] = field(default_factory=dict)


def pgbench_tps(port: int, clients: int, seconds: int, proxy_pid: int) -> Cell:
    command = ["pgbench", "-n", "-S", "-c", str(clients), "-j", str(min(clients, 2)),
               "-T", str(seconds), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
               DATABASE]  # fmt: skip
    with measuring(proxy_pid) as usage:
        out = _run(command, seconds + 60)
    for line in out.splitlines():
        if line.startswith("tps = "):
            return Cell(float(line.split()[2]), usage)
    raise BenchError(f"pgbench printed no tps: {out[-300:]}")


def pgbench_latency(port: int, seconds: int, proxy_pid: int) -> Cell:
    """Per-transaction latencies of one client, from pgbench's log (microseconds)."""
    with tempfile.TemporaryDirectory() as tmp:
        prefix = str(Path(tmp) / "tx")
        command = ["pgbench", "-n", "-S", "-c", "1", "-T", str(seconds), "-l",
                   f"--log-prefix={prefix}", "-h", "127.0.0.1", "-p", str(port),
                   "-U", "postgres", DATABASE]  # fmt: skip
        with measuring(proxy_pid) as usage:
            _run(command, seconds + 60)
        latencies = sorted(
            int(line.split()[2])
            for log in Path(tmp).glob("tx*")
            for line in log.read_text().splitlines()
            if line.strip()
        )
    if not latencies:
        raise BenchError("pgbench wrote no transaction log")
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    extra = {"p99": float(p99), "count": float(len(latencies))}
    return Cell(statistics.median(latencies), usage, extra)


def redis_rps(port: int, requests: int, proxy_pid: int) -> dict[str, Cell]:
    command = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-t", "get,set",
               "-n", str(requests), "-c", "50", "-q", "--csv"]  # fmt: skip
    with measuring(proxy_pid) as usage:
        out = _run(command, 300)
    rows = list(csv.DictReader(out.splitlines()))
    return {row["test"]: Cell(float(row["rps"]), usage) for row in rows}


def bulk_mbps(port: int, size: int, proxy_pid: int) -> Cell:
    chunk = memoryview(bytes(1 << 20))
    with measuring(proxy_pid) as usage, socket.create_connection(("127.0.0.1", port), 60) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        start = time.perf_counter()
        for _ in range(size // len(chunk)):
            sock.sendall(chunk)
        sock.shutdown(socket.SHUT_WR)
        answer = sock.recv(64)
        elapsed = time.perf_counter() - start
    if int(answer or b"0") != size // len(chunk) * len(chunk):
        raise BenchError(f"the sink counted {answer!r} bytes")
    return Cell(size / elapsed / 1e6, usage)


@dataclass
class Results:
    tps: list[tuple[Cell, Cell]] = field(default_factory=list)
    latency: list[tuple[Cell, Cell]] = field(default_factory=list)
    redis: list[tuple[dict[str, Cell], dict[str, Cell]]] = field(default_factory=list)
    bulk: list[tuple[Cell, Cell]] = field(default_factory=list)


def both(measure: Callable[[int], Cell], direct: int, proxied: int) -> tuple[Cell, Cell]:
    return measure(direct), measure(proxied)


def run(sizes: Sizes, proxy_pid: int, ports: dict[str, int], sink_port: int) -> Results:
    results = Results()
    for _ in range(sizes.rounds):
        results.tps.append(both(
            lambda p: pgbench_tps(p, 8, sizes.seconds, proxy_pid), PG_PORT, ports["pg"]
        ))  # fmt: skip
        results.latency.append(both(
            lambda p: pgbench_latency(p, sizes.latency_seconds, proxy_pid), PG_PORT, ports["pg"]
        ))  # fmt: skip
        results.redis.append((
            redis_rps(REDIS_PORT, sizes.redis_requests, proxy_pid),
            redis_rps(ports["redis"], sizes.redis_requests, proxy_pid),
        ))  # fmt: skip
        results.bulk.append(both(
            lambda p: bulk_mbps(p, sizes.bulk_bytes, proxy_pid), sink_port, ports["bulk"]
        ))  # fmt: skip
    return results


# -- the report --------------------------------------------------------------------------------


def report_tps(results: Results, sizes: Sizes) -> list[str]:
    print(f"\n(a) pgbench -S -c 8 -j 2 -T {sizes.seconds}: transactions per second")
    print("              direct       proxy   proxy/direct   cores busy (d / p)   proxy CPU/tx")
    for i, (d, p) in enumerate(results.tps, 1):
        cpu_us = p.usage.proxy_cpu_s / max(p.value * sizes.seconds, 1) * 1e6
        print(f"  round {i}  {d.value:10,.0f}  {p.value:10,.0f}   {p.value / d.value:9.2f}x"
              f"      {d.usage.cores_busy:4.2f} / {p.usage.cores_busy:4.2f}"
              f"        {cpu_us:5.1f} µs")  # fmt: skip
    ratio = statistics.mean(p.value / d.value for d, p in results.tps)
    print(f"  mean ratio {ratio:.2f}x (target >= {TPS_TARGET}x)")
    if ratio >= TPS_TARGET:
        return []
    d, p = results.tps[-1]
    direct_us = d.usage.cores_busy / d.value * 1e6
    proxy_us = p.usage.proxy_cpu_s / (p.value * sizes.seconds) * 1e6
    return [
        f"pgbench TPS ratio {ratio:.2f}x < {TPS_TARGET}x: the cores are saturated "
        f"({p.usage.cores_busy:.2f} busy) and each transaction costs pgbench+PostgreSQL "
        f"about {direct_us:.0f} µs of CPU direct while the proxy adds {proxy_us:.0f} µs "
        "(two reads, two writes, their wake-ups; mostly the kernel's loopback TCP path), a "
        f"ceiling near {direct_us / (direct_us + proxy_us):.2f}x on this machine"
    ]


def report_latency(results: Results, sizes: Sizes) -> list[str]:
    print(f"\n(b) pgbench -S -c 1 -T {sizes.latency_seconds}: latency per transaction (µs)")
    print("              direct p50   p99     proxy p50   p99     added p50   p99")
    added = []
    for i, (d, p) in enumerate(results.latency, 1):
        added.append(p.value - d.value)
        print(f"  round {i}  {d.value:10.0f} {d.extra['p99']:6.0f}   {p.value:10.0f} "
              f"{p.extra['p99']:6.0f}   {p.value - d.value:10.0f} "
              f"{p.extra['p99'] - d.extra['p99']:6.0f}")  # fmt: skip
    added_p50 = statistics.mean(added)
    print(f"  mean added p50 {added_p50:.0f} µs (target <= {ADDED_P50_TARGET_US:.0f} µs)")
    if added_p50 <= ADDED_P50_TARGET_US:
        return []
    return [
        f"added p50 {added_p50:.0f} µs > {ADDED_P50_TARGET_US:.0f} µs: each round trip "
        "crosses the proxy twice, and each crossing is a wake-up of the proxy process, a "
        "read, a write and the loopback TCP path"
    ]


def report_redis(results: Results, sizes: Sizes) -> None:
    print(f"\n(c) redis-benchmark -c 50 -n {sizes.redis_requests}: requests per second")
    print("              direct       proxy   proxy/direct   proxy CPU/request")
    for test in ("SET", "GET"):
        for i, (d, p) in enumerate(results.redis, 1):
            dc, pc = d[test], p[test]
            cpu = pc.usage.proxy_cpu_s / (2 * sizes.redis_requests) * 1e6  # both tests
            print(f"  {test} r{i}  {dc.value:10,.0f}  {pc.value:10,.0f}   "
                  f"{pc.value / dc.value:9.2f}x   {cpu:8.1f} µs")  # fmt: skip


def report_bulk(results: Results, sizes: Sizes) -> None:
    print(f"\n(d) one connection, {sizes.bulk_bytes >> 20} MiB to a sink: MB/s")
    print("              direct       proxy   proxy/direct   cores busy (d / p)")
    for i, (d, p) in enumerate(results.bulk, 1):
        print(f"  round {i}  {d.value:10,.0f}  {p.value:10,.0f}   {p.value / d.value:9.2f}x"
              f"      {d.usage.cores_busy:4.2f} / {p.usage.cores_busy:4.2f}")  # fmt: skip


def print_report(results: Results, sizes: Sizes) -> list[str]:
    """Print the tables; return the targets missed, each with what limits it."""
    missed = report_tps(results, sizes) + report_latency(results, sizes)
    report_redis(results, sizes)
    report_bulk(results, sizes)
    return missed


def print_header(sizes: Sizes) -> None:
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print("gameday fault proxy: overhead with no fault active (direct vs through one link)")
    print(f"machine: {os.cpu_count()} CPUs, load average {load}, {platform.system()} "
          f"{platform.release()}, Python {platform.python_version()}")  # fmt: skip
    print(f"sizes: {sizes}")


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Overhead of the gameday fault proxy.")
    parser.add_argument("--quick", action="store_true", help="tiny durations (smoke test)")
    parser.add_argument("--seconds", type=int, help="seconds per pgbench run")
    parser.add_argument("--rounds", type=int, help="direct/proxy pairs per load")
    parser.add_argument("--sink", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.sink:
        return serve_sink()
    sizes = Sizes.choose(args.quick, args.seconds, args.rounds)
    signal.signal(signal.SIGTERM, _terminate)
    began = time.perf_counter()
    print_header(sizes)
    procs: list[subprocess.Popen[str]] = []
    try:
        proxy_pid, ports, sink_port = start_processes(procs)
        prepare_database()
        missed = print_report(run(sizes, proxy_pid, ports, sink_port), sizes)
    except BenchError as exc:
        print(f"\nbench failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nbench interrupted", file=sys.stderr)
        return 130
    finally:
        for proc in procs:
            _stop(proc)
        drop_database()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\nload average after: {load}; total bench time {time.perf_counter() - began:.1f} s")
    for line in missed:
        print(f"target missed: {line}")
    if not missed:
        print("targets met: pgbench TPS ratio and added p50 latency")
    return 0


if __name__ == "__main__":
    sys.exit(main())
