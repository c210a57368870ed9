"""The payment provider emulator as a child process of the harness.

Started with ``python -m stripe_emulator`` rather than imported, so the harness depends on
the provider only through its HTTP API, exactly as it would on real Stripe test mode.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

READY_PREFIX = "stripe-emulator listening on "


class ProviderStartError(RuntimeError):
    """The emulator process did not come up."""


@dataclass(frozen=True, slots=True)
class ProviderProcess:
    url: str
    pid: int


def _read_ready_line(proc: subprocess.Popen[str], timeout_s: float) -> str:
    if proc.stdout is None:
        raise ProviderStartError("the emulator's output is not captured")
    deadline = time.monotonic() + timeout_s
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not selector.select(timeout=max(0.0, deadline - time.monotonic())):
                break
            line = proc.stdout.readline()
            if not line:
                break
            if line.startswith(READY_PREFIX):
                return line[len(READY_PREFIX) :].strip()
    raise ProviderStartError(
        f"stripe emulator did not report ready within {timeout_s:.0f}s (exit code {proc.poll()})"
    )


@contextlib.contextmanager
def run_provider(
    *, clock_speed: float = 1.0, retry_base_s: float = 60.0, start_timeout_s: float = 20.0
) -> Iterator[ProviderProcess]:
    """Start the emulator on a free loopback port; stop it (and wait) on exit."""
    command = [
        sys.executable, "-m", "stripe_emulator",
        "--host", "127.0.0.1", "--port", "0",
        "--clock-speed", str(clock_speed), "--webhook-retry-base", str(retry_base_s),
    ]  # fmt: skip
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module, fixed arguments
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        url = _read_ready_line(proc, start_timeout_s)
        yield ProviderProcess(url=url, pid=proc.pid)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if proc.stdout is not None:
            proc.stdout.close()
