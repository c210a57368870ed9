"""The payment provider emulator as a child process of the harness.

Started with ``python -m stripe_emulator`` rather than imported, so the harness depends on
the provider only through its HTTP API, exactly as it would on real Stripe test mode. Its
state lives in memory: a restart (a process fault) forgets every object, as a provider
outage with data loss would — which is what the drill wants to see survived.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from gameday.stack.parts import ProcessPart
from gameday.stack.processes import StartError, free_port, pipe_lines, read_line, spawn

READY_PREFIX = "stripe-emulator listening on "


class ProviderStartError(StartError):
    """The emulator process did not come up."""


@dataclass(frozen=True, slots=True)
class ProviderProcess:
    url: str
    pid: int


class ProviderServer(ProcessPart):
    def __init__(
        self,
        workdir: Path,
        *,
        clock_speed: float = 1.0,
        retry_base_s: float = 60.0,
        start_timeout_s: float = 20.0,
    ) -> None:
        super().__init__("provider", workdir)
        self.port = free_port()
        self.address = f"http://127.0.0.1:{self.port}"
        self.clock_speed = clock_speed
        self.retry_base_s = retry_base_s
        self.start_timeout_s = start_timeout_s

    def launch(self) -> subprocess.Popen[str]:
        return spawn(
            [sys.executable, "-m", "stripe_emulator", "--host", "127.0.0.1",
             "--port", str(self.port), "--clock-speed", str(self.clock_speed),
             "--webhook-retry-base", str(self.retry_base_s)],
            log=self.log, stdout_pipe=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip

    def wait_ready(self, proc: subprocess.Popen[str]) -> None:
        try:
            read_line(proc, READY_PREFIX, what="the payment provider emulator",
                      timeout_s=self.start_timeout_s, log=self.log)  # fmt: skip
        except StartError as error:
            raise ProviderStartError(str(error)) from None
        if proc.stdout is not None:
            pipe_lines(proc.stdout)


@contextlib.contextmanager
def run_provider(
    *, clock_speed: float = 1.0, retry_base_s: float = 60.0, start_timeout_s: float = 20.0
) -> Iterator[ProviderProcess]:
    """Start the emulator on a free loopback port; stop it (and wait) on exit."""
    with tempfile.TemporaryDirectory(prefix="gameday-provider-") as workdir:
        part = ProviderServer(
            Path(workdir), clock_speed=clock_speed, retry_base_s=retry_base_s,
            start_timeout_s=start_timeout_s,
        )  # fmt: skip
        part.start()
        try:
            yield ProviderProcess(url=part.address, pid=part.pid or 0)
        finally:
            part.stop()
