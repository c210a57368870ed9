"""The benchmark still runs (a quick pass; the figures themselves are read by people)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "stripe_emulator.py"


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
