"""The checkers' benchmark still runs (a quick pass; the figures are read by people)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[3] / "bench" / "checkers.py"


def test_quick_bench_prints_every_case() -> None:
    done = subprocess.run(  # noqa: S603 - our interpreter and our own script
        [sys.executable, str(BENCH), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for case in ("(a) json.loads", "(b) scan_history", "(s) the same with", "(c) read_history"):
        assert case in done.stdout
    assert done.stdout.count("deterministic_retries=pass, no_lost_ack=pass") == 3
    assert done.stdout.count("p95_ms=") == 1  # only (s) collects the statistics
