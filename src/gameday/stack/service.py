"""The target service's processes: ``bookings serve`` workers and its one-shot commands
(``migrate``, ``seed --gameday``, ``cleanup --gameday``).

The harness starts them through the ``bookings`` command line with ``BOOKINGS_*``
variables, never by importing the package: it drives the reference service exactly as it
would drive a team's own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import httpx

from gameday.stack.parts import ProcessPart
from gameday.stack.processes import StartError, pipe_lines, read_line, spawn, tail

READY_PREFIX = "bookings listening on "


def bookings_command(
    args: list[str], *, env: Mapping[str, str], log: Path, timeout_s: float = 120
) -> str:
    """Run one ``bookings`` command to completion; its output, or a StartError."""
    proc = spawn([sys.executable, "-m", "bookings", *args], log=log,
                 env={**os.environ, **env}, stdout_pipe=True)  # fmt: skip
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise StartError(f"bookings {args[0]} did not finish within {timeout_s:.0f} s") from None
    if proc.returncode != 0:
        raise StartError(f"bookings {args[0]} failed (exit {proc.returncode}){tail(log)}")
    return out.strip()


class ServiceWorker(ProcessPart):
    """One ``bookings serve`` process on a fixed port, reaching its dependencies through
    its own proxies (the URLs in ``env``)."""

    stop_grace_s = 15.0

    def __init__(self, name: str, workdir: Path, port: int, env: Mapping[str, str]) -> None:
        super().__init__(name, workdir)
        self.port = port
        self.env = dict(env)
        self.address = f"http://127.0.0.1:{port}"

    def launch(self) -> subprocess.Popen[str]:
        return spawn(
            [sys.executable, "-m", "bookings", "serve", "--host", "127.0.0.1",
             "--port", str(self.port), "--log-level", self.env.get("BOOKINGS_LOG_LEVEL", "info")],
            log=self.log, env={**os.environ, **self.env, "PYTHONUNBUFFERED": "1"},
            stdout_pipe=True,
        )  # fmt: skip

    def wait_ready(self, proc: subprocess.Popen[str]) -> None:
        try:
            read_line(proc, READY_PREFIX, what=f"bookings worker {self.name}", timeout_s=60)
        except StartError as error:
            raise StartError(f"{error}{tail(self.log)}") from None
        if proc.stdout is not None:
            pipe_lines(proc.stdout)

    def health(self, which: str = "ready", timeout_s: float = 2.0) -> tuple[int, dict[str, object]]:
        """(status, body) of ``/health/<which>``; (0, {}) when it does not answer."""
        try:
            answer = httpx.get(f"{self.address}/health/{which}", timeout=timeout_s)
            return answer.status_code, answer.json()
        except (httpx.HTTPError, ValueError):
            return 0, {}
