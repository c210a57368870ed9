"""`gameday stack up|status|down` and `gameday fault …` as a user runs them, and the
promise that nothing survives the harness — not even a `kill -9` of it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from gameday.cli import app
from gameday.stack.processes import alive, listening
from gameday.stack.state import read_state

GAMEDAY = [sys.executable, "-m", "gameday"]
LAUNCHED: list[StackUp] = []


def gameday(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> Any:
    environment = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run(  # noqa: S603 - our own CLI with fixed arguments
        [*GAMEDAY, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environment,
        check=False,
    )


class StackUp:
    """`gameday stack up` running in the background, as in a second terminal."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(  # noqa: S603 - our own CLI with fixed arguments
            [*GAMEDAY, "stack", "up", *args], stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, env={**os.environ, "COLUMNS": "200"},
        )  # fmt: skip
        LAUNCHED.append(self)
        self.lines: list[str] = []
        self.ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        if not self.ready.wait(90):
            self.proc.kill()
            raise AssertionError("stack up did not become ready:\n" + "".join(self.lines))

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            if "stack ready" in line:
                self.ready.set()

    def wait(self, timeout_s: float) -> int:
        code = self.proc.wait(timeout_s)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return code

    def state(self, root: Path) -> dict[str, Any]:
        states = [read_state(d) for d in root.iterdir()]
        found = [s for s in states if s and s["owner_pid"] == self.proc.pid]
        assert len(found) == 1
        return found[0]


@pytest.fixture
def root(stack_root: Path) -> Iterator[Path]:
    yield stack_root
    while LAUNCHED:  # a failed assertion must not leave a stack running past the tests
        up = LAUNCHED.pop()
        if up.proc.poll() is None:
            up.proc.send_signal(signal.SIGTERM)
        up.wait(60)
    # Whatever a test did, nothing of its stacks may be left behind.
    assert [d.name for d in stack_root.iterdir()] == []


def test_kill_9_of_the_harness_leaves_no_process_and_the_next_stack_starts(root: Path) -> None:
    """Also: status, faults and down from the command line against the second stack, and a
    clean exit on `stack down` (the SIGTERM path)."""
    first = StackUp()  # with Prometheus and Alertmanager: they too must die with it
    state = first.state(root)
    injected = gameday("fault", "inject", "latency", "w1.db", "-p", "ms=50", "--duration", "60")
    assert injected.returncode == 0, injected.stderr
    pids = [p["pid"] for p in state["parts"].values() if p["pid"]]
    assert len(pids) == 9
    first.proc.send_signal(signal.SIGKILL)
    first.wait(10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(alive(pid) for pid in pids):
        time.sleep(0.05)
    assert [pid for pid in pids if alive(pid)] == []
    ports = [int(a.rsplit(":", 1)[1]) for a in state["links"].values()]
    assert [port for port in ports if listening(port)] == []
    # The stack's reaper outlives the harness just long enough to remove its files.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and Path(state["dir"]).exists():
        time.sleep(0.05)
    assert not Path(state["dir"]).exists()

    second = StackUp("--no-monitoring")  # sweeps what the first left on disk
    assert not Path(state["dir"]).exists()
    status = gameday("stack", "status", "--json")
    assert status.returncode == 0, status.stderr
    shown = json.loads(status.stdout)
    assert set(shown["ready"].values()) == {200}
    assert "secrets" not in shown  # status never prints credentials
    _faults_from_the_command_line()
    down = gameday("stack", "down")
    assert down.returncode == 0, down.stderr
    assert second.wait(10) == 0
    assert not any(alive(p["pid"]) for p in shown["parts"].values() if p["pid"])


def test_a_missing_program_is_one_line_and_starts_nothing(root: Path) -> None:
    result = gameday("stack", "up", "--no-monitoring", env={"PATH": "/nonexistent"})
    assert result.returncode == 3
    assert "redis-server is not installed: apt-get install redis-server" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_status_without_a_stack_says_how_to_start_one(root: Path) -> None:
    result = gameday("stack", "status")
    assert result.returncode == 1
    assert "gameday stack up" in result.stderr


def _faults_from_the_command_line() -> None:
    """In-process (the same commands, without a Python start-up each): the stack they act on
    is the one the test started, found through its state file as from another terminal."""

    def run(*args: str) -> Any:
        return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})

    bad = run("fault", "inject", "latency", "w1.db", "-p", "ms=-5")
    assert bad.exit_code == 2
    assert "ms must be between 0 and 60000" in bad.stderr
    unknown = run("fault", "inject", "teleport", "w1")
    assert unknown.exit_code == 2
    assert "unknown fault kind 'teleport'" in unknown.stderr
    made = run("fault", "inject", "down", "w1.redis", "--duration", "30")
    assert made.exit_code == 0, made.output
    listed = run("fault", "list")
    assert "down" in listed.stdout
    assert "w1.redis" in listed.stdout
    healed = run("fault", "heal")
    assert healed.exit_code == 0, healed.output
    assert "no active faults" in run("fault", "list").stdout
    kinds = run("fault", "kinds")
    for kind in ("latency", "loss", "kill", "pause", "memory", "disk_fill", "token_expiry"):
        assert kind in kinds.stdout
