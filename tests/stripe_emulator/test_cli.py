"""``stripe-emulator`` as a real process: ready line, serving, clean exit, clear errors."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest
import stripe

from tests.helpers import payment

READY = "stripe-emulator listening on "


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(  # noqa: S603 - our own module with fixed arguments
        [sys.executable, "-m", "stripe_emulator", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def served() -> Iterator[tuple[subprocess.Popen[str], str]]:
    proc = _start("--port", "0")
    assert proc.stdout is not None
    line = proc.stdout.readline()
    try:
        assert line.startswith(READY), line
        yield proc, line[len(READY) :].strip()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


def test_serves_the_sdk_and_stops_on_sigterm(served: tuple[subprocess.Popen[str], str]) -> None:
    proc, url = served
    assert url.startswith("http://127.0.0.1:")
    client = stripe.StripeClient("sk_test_cli_check", base_addresses={"api": url})
    assert client.v1.payment_intents.create(params=payment()).status == "succeeded"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=10)
    # uvicorn shuts down gracefully, then re-raises the signal so the exit status tells why.
    assert proc.returncode in (0, -signal.SIGTERM)
    assert "Traceback" not in err


def test_port_in_use_is_one_clear_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = _start("--port", str(port))
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in err
    assert "Traceback" not in err


def test_help_explains_the_options() -> None:
    proc = _start("--help")
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0
    for option in ("--port", "--host", "--webhook-timeout", "--clock-speed"):
        assert option in out


def test_bad_log_level_is_refused_without_traceback() -> None:
    proc = _start("--port", "0", "--log-level", "loud")
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 2
    assert "--log-level" in err
    assert "Traceback" not in err
