"""Ctrl-C in the middle of an outage: the fault is healed, the stack is gone, and the
journal says what ran and why it stopped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.drill]


def _journal(path: Path) -> dict[str, object]:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


def test_an_interrupted_drill_heals_and_leaves_its_evidence(tmp_path: Path) -> None:
    out = tmp_path / "report"
    # A stack root of its own, since another drill may be running beside this one; outside
    # tmp_path, whose parents only root may enter (the private PostgreSQL runs as postgres).
    stacks = Path(tempfile.mkdtemp(prefix="gameday-abort-stacks-"))
    stacks.chmod(0o711)
    proc = subprocess.Popen(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "gameday", "drill", "-s", "4", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "GAMEDAY_STACK_ROOT": str(stacks)},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            timeline = _journal(out / "journal.json").get("timeline", [])
            if any(e["kind"] == "inject" for e in timeline):  # type: ignore[attr-defined]
                break
            time.sleep(0.2)
        else:
            pytest.fail("the drill never injected its fault")
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 3, output[-2000:]
    assert "Traceback" not in output
    journal = _journal(out / "journal.json")
    assert journal["status"] == "aborted"
    kinds = [e["kind"] for e in journal["timeline"]]  # type: ignore[attr-defined]
    assert "inject" in kinds
    assert "heal_all" in kinds or "heal" in kinds
    assert (out / "history.jsonl").stat().st_size > 0
    left = [p.name for p in stacks.iterdir()]
    assert not left, f"stack directories left behind: {left}"
    stacks.rmdir()
    assert os.path.exists(out / "report.md")
