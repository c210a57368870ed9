"""Running ``gameday drill`` as a user does: a separate process, its journal read back."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class DrillRun:
    code: int
    output: str
    journal: dict[str, Any]
    out: Path

    def scenario(self, sid: int) -> dict[str, Any]:
        return next(s for s in self.journal["scenarios"] if s["id"] == sid)

    def check(self, sid: int, name: str) -> dict[str, Any]:
        return next(c for c in self.scenario(sid)["checks"] if c["name"] == name)


def run_drill(out: Path, *args: str, timeout_s: float = 420) -> DrillRun:
    done = subprocess.run(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "gameday", "drill", "--out", str(out), *args],
        capture_output=True, text=True, timeout=timeout_s, check=False,
    )  # fmt: skip
    output = done.stdout + done.stderr
    journal_file = out / "journal.json"
    assert journal_file.exists(), output[-3000:]
    return DrillRun(done.returncode, output, json.loads(journal_file.read_text()), out)
