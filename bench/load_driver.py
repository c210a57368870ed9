"""Requests per second of the drill's load driver, next to wrk and Locust on the same target.

    .venv/bin/python bench/load_driver.py [--seconds S] [--connections C] [--quick]

Starts a private nginx on a free loopback port (a temp config, ``return 200 "ok";``, one
worker, access log off; ``nginx-light`` and ``wrk`` are installed with apt-get when missing
and this runs as root), then loads it with C connections (32) for S seconds (5) each:

(a) ``wrk -t1 -cC``: the C ceiling of one load-generating thread;
(b) Locust, ``FastHttpUser`` with C users and no wait time, in one process (its Python API in
    a child process, because Locust monkey-patches the whole interpreter for gevent); the rate
    is counted after every user has started, so the ramp does not count against it;
(c) ours: ``HttpClient`` and ``Driver`` on uvloop in this process, C closed-loop flows, every
    request recorded in a ``HistoryWriter`` on a temp file (the history is read back and its
    lines counted, to show the recording was real);
(d) ours without the driver (``HttpClient.request`` only), for the cost of the recording.

The load generator and nginx share the machine's cores, so each row also gives the load
generator's own CPU time per request (``getrusage``), which compares across machines better
than the rate. Target (the issue): (c) at least 3x (b). Every phase is bounded in time, nginx
dies with this process (Linux PR_SET_PDEATHSIG) and the temp files are removed on exit.
About 360 lines, over the module budget: a bench runs as one script, and its parts (nginx,
the four loads, the report) only make sense together.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import importlib.util
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from gameday.history import HistoryWriter, read_history
from gameday.load import Call, Driver, HttpClient, run

TARGET_VS_LOCUST = 3.0
NGINX_CONF = """\
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 100000000;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{ return 200 "ok"; }}
    }}
}}
"""
LOCUST_RUNNER = """\
import resource, sys, time
import gevent
from locust import FastHttpUser, constant, task
from locust.env import Environment

HOST, USERS, SECONDS = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])


class Bench(FastHttpUser):
    host = HOST
    wait_time = constant(0)

    @task
    def hit(self):
        self.client.get("/")


env = Environment(user_classes=[Bench])
runner = env.create_local_runner()
runner.start(USERS, spawn_rate=USERS)
deadline = time.monotonic() + 10
while runner.user_count < USERS and time.monotonic() < deadline:
    gevent.sleep(0.05)
gevent.sleep(0.5)


def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


total = env.stats.total
n0, f0, t0, c0 = total.num_requests, total.num_failures, time.monotonic(), cpu()
gevent.sleep(SECONDS)
n1, f1, t1, c1 = total.num_requests, total.num_failures, time.monotonic(), cpu()
runner.quit()
print(f"RESULT {n1 - n0} {t1 - t0} {f1 - f0} {c1 - c0}", flush=True)
"""
CALL = Call(f="get", method="GET", path="/", endpoint="GET /", target="nginx")


class BenchError(RuntimeError):
    """A step failed; the message says which and why."""


@dataclass(frozen=True)
class Row:
    label: str
    requests: int
    seconds: float
    cpu_s: float
    note: str = ""

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def cpu_us(self) -> float:
        return self.cpu_s / self.requests * 1e6 if self.requests else 0.0


# -- nginx and the tools ------------------------------------------------------------------------


def ensure_tools() -> None:
    missing = [pkg for tool, pkg in (("nginx", "nginx-light"), ("wrk", "wrk")) if not _which(tool)]
    if not missing:
        return
    if os.geteuid() != 0:
        raise BenchError(f"missing {', '.join(missing)}: apt-get install -y {' '.join(missing)}")
    print(f"installing {' '.join(missing)} with apt-get", flush=True)
    done = subprocess.run(  # noqa: S603 - fixed arguments
        ["apt-get", "install", "-y", *missing],  # noqa: S607 - the system's apt-get
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"apt-get install {' '.join(missing)} failed: {done.stderr[-400:]}")


def _which(tool: str) -> str | None:
    return shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/usr/bin")


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when this process dies, even by SIGKILL (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@contextlib.contextmanager
def nginx(workdir: Path) -> Iterator[str]:
    """A private nginx answering ``ok`` on a free loopback port: yields its base URL."""
    port = _free_port()
    conf = workdir / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=workdir, port=port))
    binary = _which("nginx") or "nginx"
    proc = subprocess.Popen(  # noqa: S603 - the system's nginx with our config
        [binary, "-c", str(conf), "-p", str(workdir), "-e", str(workdir / "error.log"),
         "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_die_with_parent if sys.platform == "linux" else None,  # noqa: PLW1509 - one C call
    )  # fmt: skip
    try:
        _wait_for_port(proc, port)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        if proc.stderr is not None:
            proc.stderr.close()


def _wait_for_port(proc: subprocess.Popen[str], port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            said = proc.stderr.read() if proc.stderr is not None else ""
            raise BenchError(f"nginx exited with {proc.returncode}: {said.strip()[-400:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise BenchError("nginx did not listen within 10 s")


# -- the loads -----------------------------------------------------------------------------------


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _self_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_wrk(url: str, seconds: float, connections: int) -> Row:
    before = _children_cpu_s()
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", f"{url}/"]
    try:
        done = subprocess.run(  # noqa: S603 - wrk with fixed arguments
            command, capture_output=True, text=True, timeout=seconds + 30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BenchError(f"wrk: {exc}") from None
    found = re.search(r"(\d+) requests in ([\d.]+)s", done.stdout)
    if done.returncode != 0 or found is None:
        raise BenchError(f"wrk failed: {done.stdout[-300:]} {done.stderr[-300:]}")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", done.stdout)
    note = f"{errors.group(1)} non-2xx" if errors else ""
    cpu = _children_cpu_s() - before
    return Row("(a) wrk -t1", int(found.group(1)), float(found.group(2)), cpu, note)


def run_locust(url: str, seconds: float, users: int, workdir: Path) -> Row | None:
    if importlib.util.find_spec("locust") is None:
        return None
    script = workdir / "locust_runner.py"
    script.write_text(LOCUST_RUNNER)
    try:
        done = subprocess.run(  # noqa: S603 - our interpreter and the script written above
            [sys.executable, str(script), url, str(users), str(seconds)],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BenchError(f"locust: {exc}") from None
    found = re.search(r"RESULT (\d+) ([\d.]+) (\d+) ([\d.]+)", done.stdout)
    if done.returncode != 0 or found is None:
        raise BenchError(f"locust failed: {done.stdout[-300:]} {done.stderr[-600:]}")
    requests, elapsed, failures, cpu = found.groups()
    note = f"{failures} failures" if int(failures) else ""
    return Row("(b) Locust FastHttpUser", int(requests), float(elapsed), float(cpu), note)


async def _closed_loop(url: str, seconds: float, flows: int, driver: Driver | None) -> Row:
    async with HttpClient(url, connections=flows) as client:
        await client.warm(flows)
        loop = asyncio.get_running_loop()
        done = 0

        async def flow(k: int) -> None:
            nonlocal done
            process = f"c{k}"
            while loop.time() < end:
                if driver is None:
                    await client.request("GET", "/")
                else:
                    await driver.call(client, CALL, process)
                done += 1

        cpu, began = _self_cpu_s(), time.perf_counter()
        end = loop.time() + seconds
        await asyncio.gather(*(flow(k) for k in range(flows)))
        elapsed, cpu = time.perf_counter() - began, _self_cpu_s() - cpu
    label = "(c) ours, recorded" if driver is not None else "(d) ours, client only"
    return Row(label, done, elapsed, cpu)


def run_ours(url: str, seconds: float, flows: int, workdir: Path) -> tuple[Row, Row]:
    path = workdir / "history.jsonl"
    with HistoryWriter(path) as history:
        driver = Driver(history, scenario="bench", phase="load", max_ops=100_000_000)
        recorded = run(_closed_loop(url, seconds, flows, driver))
    started = time.perf_counter()
    lines = sum(1 for op in read_history(path) if op.type == "ok")
    took = time.perf_counter() - started
    size_mb = path.stat().st_size / 1e6
    note = f"{lines} ok lines ({size_mb:.0f} MB) read back in {took:.1f} s"
    if lines != recorded.requests:
        raise BenchError(f"the history holds {lines} ok operations, {recorded.requests} were made")
    recorded = Row(recorded.label, recorded.requests, recorded.seconds, recorded.cpu_s, note)
    return recorded, run(_closed_loop(url, seconds, flows, None))


# -- the report ------------------------------------------------------------------------------------


def print_report(rows: list[Row], wrk: Row, locust: Row | None, ours: Row) -> bool:
    """The table and the ratios; True when the target against Locust is met."""
    print(f"  {'load generator':<26}{'requests':>10}{'req/s':>10}{'CPU µs/req':>12}  note")
    for row in rows:
        print(
            f"  {row.label:<26}{row.requests:>10}{row.rate:>10.0f}{row.cpu_us:>12.1f}  {row.note}"
        )
    print(f"\n  ours/wrk     {ours.rate / wrk.rate:6.2f}")
    if locust is None:
        print("  ours/Locust  n/a: locust is not installed (pip install -e '.[bench]')")
        return True
    ratio = ours.rate / locust.rate
    verdict = "met" if ratio >= TARGET_VS_LOCUST else "MISSED"
    print(f"  ours/Locust  {ratio:6.2f}  (target >= {TARGET_VS_LOCUST:.0f}x: {verdict})")
    return ratio >= TARGET_VS_LOCUST


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per load (5)")
    parser.add_argument("--connections", type=int, default=32, help="connections/users (32)")
    parser.add_argument("--quick", action="store_true", help="1 s per load (smoke test)")
    args = parser.parse_args(argv)
    seconds = 1.0 if args.quick else args.seconds
    began = time.perf_counter()
    print(
        f"load driver bench: {args.connections} connections, {seconds:g} s per load, "
        f"{os.cpu_count()} cores shared by nginx (1 worker) and the load generator"
    )
    try:
        ensure_tools()
        with (
            tempfile.TemporaryDirectory(prefix="gameday-bench-load-") as tmp,
            nginx(Path(tmp)) as url,
        ):
            print(f'target: nginx at {url}/ answering 200 "ok"\n')
            wrk = run_wrk(url, seconds, args.connections)
            locust = run_locust(url, seconds, args.connections, Path(tmp))
            ours, bare = run_ours(url, seconds, args.connections, Path(tmp))
    except BenchError as exc:
        print(f"\nbench failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nbench interrupted", file=sys.stderr)
        return 130
    rows = [row for row in (wrk, locust, ours, bare) if row is not None]
    print_report(rows, wrk, locust, ours)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\nload average after: {load}; total bench time {time.perf_counter() - began:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
