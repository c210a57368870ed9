"""Wall time of the full fast drill on the embedded stack, next to the fixed cost of the
stack alone (up, then down) measured in the same run.

    .venv/bin/python bench/drill_walltime.py [--runs N]

Target (the issue): the full fast drill in at most 120 s on this 2-core machine. The
stack-only baseline makes the figure comparable across noisy runs: what the drill adds is
its scenarios (outages of seconds at the fast pace, observation, alert grace periods,
checks), and the phase breakdown comes from the journal's timeline.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TARGET_S = 120.0


def stack_only() -> float:
    from gameday.stack.options import StackOptions  # noqa: PLC0415 - after argument parsing
    from gameday.stack.stack import Stack  # noqa: PLC0415

    started = time.perf_counter()
    with Stack(StackOptions()):
        pass
    return time.perf_counter() - started


def drill(out: Path) -> tuple[float, int, dict[str, Any]]:
    started = time.perf_counter()
    done = subprocess.run(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "gameday", "drill", "--seed", "1", "--out", str(out)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    took = time.perf_counter() - started
    return took, done.returncode, json.loads((out / "journal.json").read_text())


def phases(journal: dict[str, Any]) -> list[tuple[str, float]]:
    timeline = [e for e in journal["timeline"] if e["kind"] in ("phase", "verdict")]
    found: list[tuple[str, float]] = []
    last_t, last_name = 0.0, ""
    for event in timeline:
        name = f"{event['what']} {event.get('scenario') or ''}".strip()
        if event["kind"] == "verdict":
            continue
        if last_name:
            found.append((last_name, event["t"] - last_t))
        last_t, last_name = event["t"], name
    end = max((e["t"] for e in journal["timeline"]), default=last_t)
    if last_name:
        found.append((last_name, end - last_t))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1, help="full drills to time (default 1)")
    args = parser.parse_args()
    baseline = stack_only()
    print(f"stack up + down alone: {baseline:6.1f} s")
    for run in range(1, args.runs + 1):
        with tempfile.TemporaryDirectory() as tmp:
            took, code, journal = drill(Path(tmp))
        summary = journal.get("summary", {})
        verdict, passed, total = (summary.get(k) for k in ("verdict", "pass", "scenarios"))
        print(f"\nrun {run}: full fast drill {took:6.1f} s (exit {code}, verdict {verdict}, "
              f"{passed} of {total} pass)")  # fmt: skip
        for name, seconds in phases(journal):
            print(f"  {name:<55} {seconds:6.1f} s")
        print(f"  drill / stack-only: {took / baseline:4.1f}x; target ≤ {TARGET_S:.0f} s: "
              f"{'met' if took <= TARGET_S else 'MISSED'}")  # fmt: skip


if __name__ == "__main__":
    main()
