"""The benchmarks still run (a quick pass; the figures themselves are read by people)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "stripe_emulator.py"
THROUGHPUT = BENCH.with_name("booking_throughput.py")


def test_quick_bench_prints_every_section() -> None:
    done = subprocess.run(  # noqa: S603 - our interpreter and our own script
        [sys.executable, str(BENCH), "--quick", "--payments", "1200", "--webhook-payments", "50"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for heading in ("(a) requests per second", "(b) flatness", "(c) webhook deliveries"):
        assert heading in done.stdout
    assert "pending" in done.stdout


def test_quick_booking_throughput_prints_every_section() -> None:
    """Needs the machine's PostgreSQL and Redis, like the bookings tests; about 20 s."""
    done = subprocess.run(  # noqa: S603 - our interpreter and our own script
        [sys.executable, str(THROUGHPUT), "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    for heading in ("PostgreSQL", "(a) requests per second", "(b) latency", "(c) answers"):
        assert heading in out
    for shape in ("distinct", "contended"):
        assert out.count(f"  {shape} ") == 9  # 3 concurrencies in each of the 3 sections
    assert "svc/direct" in out


def test_quick_proxy_overhead_prints_every_section() -> None:
    """Needs the machine's PostgreSQL (with pgbench) and Redis (with redis-benchmark)."""
    done = subprocess.run(  # noqa: S603 - our interpreter and our own script
        [sys.executable, str(BENCH.with_name("proxy_overhead.py")), "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for heading in ("(a) pgbench", "(b) pgbench", "(c) redis-benchmark", "(d) one connection"):
        assert heading in done.stdout
    assert "proxy/direct" in done.stdout
    assert "added p50" in done.stdout
