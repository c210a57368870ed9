"""Child processes that cannot outlive the harness.

Every part of the stack is a direct child started through :func:`spawn`, which asks the
kernel (``PR_SET_PDEATHSIG``) to SIGKILL the child when the harness dies — even by
``kill -9``, when no ``finally`` or signal handler runs. Two kernel rules shape this module:

* the death signal is cleared when a process changes its credentials, so a child that must
  drop root (PostgreSQL refuses to run as root) sets it *after* ``setuid``;
* it fires when the *thread* that forked the child ends, not the process, so every fork
  happens on one spawner thread that lives as long as the module (a thread-pool worker
  that retires after being idle would take its children with it).

No library covers this: ``subprocess`` has no death-signal option and ``psutil`` only
observes processes.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)
# One thread, never retired before the interpreter exits: the "parent thread" of every child.
_spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gameday-spawner")


class StartError(RuntimeError):
    """A part of the stack did not come up; the message says which and why."""


@dataclass(frozen=True, slots=True)
class RunAs:
    """Drop root to this account in the child (for programs that refuse to run as root)."""

    uid: int
    gid: int
    home: str

    @classmethod
    def account(cls, name: str) -> RunAs:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            raise StartError(
                f"there is no user {name!r} to run it as (run as a normal user, "
                f"or create the account: useradd --system {name})"
            ) from None
        return cls(entry.pw_uid, entry.pw_gid, entry.pw_dir)


def _child_setup(run_as: RunAs | None, parent: int) -> Callable[[], None]:
    def setup() -> None:
        os.setsid()  # our own process group: a terminal's Ctrl-C reaches the harness only
        if run_as is not None:
            os.setgroups([])
            os.setgid(run_as.gid)
            os.setuid(run_as.uid)
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the harness died before the prctl took effect
            os._exit(1)

    return setup


def spawn(
    argv: Sequence[str],
    *,
    log: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    run_as: RunAs | None = None,
    stdout_pipe: bool = False,
) -> subprocess.Popen[str]:
    """Start ``argv`` as a child that dies with this process; stderr (and stdout unless
    piped) go to ``log``."""
    parent = os.getpid()

    def start() -> subprocess.Popen[str]:
        with open(log, "a") as sink:
            return subprocess.Popen(  # noqa: S603 - argv is built by the stack, never from input
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if stdout_pipe else sink,
                stderr=sink,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                text=True,
                preexec_fn=_child_setup(run_as, parent),  # noqa: PLW1509 - see module docstring
            )

    return _spawner.submit(start).result()


def stop(proc: subprocess.Popen[str], *, sig: int = signal.SIGTERM, grace_s: float = 10.0) -> None:
    """Ask politely, then SIGKILL; always reap. A stopped (SIGSTOP) child is continued
    first, or it would never see the polite signal."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, sig)
            os.kill(proc.pid, signal.SIGCONT)
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(10)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST_PORT = 20000


def free_port() -> int:
    """A port free on 127.0.0.1 right now, chosen below the kernel's ephemeral range.

    The child binds it a moment later. A port from ``bind(0)`` comes out of the ephemeral
    range, where any outgoing connection or another program's ``bind(0)`` can take it in
    that moment (seen in CI: the emulator failed to bind while the tests ran in parallel);
    below the range only another explicit choice can, and a random pick makes that rare.
    A lost race still shows up as a start error naming the port, never as a wrong binding.
    """
    try:
        low = int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    for _ in range(64) if low - _LOWEST_PORT >= 1000 else ():
        port = _LOWEST_PORT + secrets.randbelow(low - _LOWEST_PORT)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:  # an unusual range: let the kernel choose
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_until(
    ready: Callable[[], bool],
    *,
    what: str,
    proc: subprocess.Popen[str] | None = None,
    timeout_s: float = 30.0,
    log: Path | None = None,
) -> None:
    """Poll ``ready`` until it holds; fail fast (with the log's tail) if ``proc`` exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ready():
            return
        if proc is not None and proc.poll() is not None:
            raise StartError(f"{what} exited with code {proc.returncode}{tail(log)}")
        time.sleep(0.05)
    raise StartError(f"{what} was not ready within {timeout_s:.0f} s{tail(log)}")


def read_line(
    proc: subprocess.Popen[str], prefix: str, *, what: str, timeout_s: float,
    log: Path | None = None,
) -> str:  # fmt: skip
    """The rest of the first stdout line starting with ``prefix`` (a child's ready line)."""
    stdout = proc.stdout
    if stdout is None:
        raise StartError(f"{what}: its output is not captured")
    found: list[str] = []

    def read() -> None:
        for _ in range(200):  # bounded: a ready line comes among the first lines or never
            line = stdout.readline()
            if not line or line.startswith(prefix):
                found.append(line[len(prefix) :].strip() if line else "")
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout_s)
    if not found or not found[0]:
        if found:  # its output ended: it is exiting
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(2)
        code = proc.poll()
        if code is not None:  # its own words say why (e.g. the port was taken)
            raise StartError(f"{what} exited with code {code}{tail(log)}")
        raise StartError(f"{what} did not report ready within {timeout_s:.0f} s{tail(log)}")
    return found[0]


def tail(log: Path | None, lines: int = 8) -> str:
    """The last lines of a child's log, ready to append to an error message."""
    if log is None or not log.exists():
        return ""
    text = log.read_text(errors="replace").strip().splitlines()[-lines:]
    return (":\n  " + "\n  ".join(text)) if text else ""


def pipe_lines(stream: IO[str]) -> None:
    """Drain a child's piped stdout after its ready line, so it never blocks on a full pipe."""

    def drain() -> None:
        with contextlib.suppress(ValueError, OSError):  # closed under us by stop()
            for _ in stream:
                pass

    threading.Thread(target=drain, daemon=True).start()


def require(binary: str, *, package: str, search: Sequence[str] = ()) -> str:
    """The path of ``binary`` (in ``search`` directories first, then on PATH), or a one-line error
    saying what to install. The stack never swaps a missing program for a stand-in."""
    for directory in search:
        candidate = Path(directory) / binary
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(binary)
    if found is None:
        raise StartError(f"{binary} is not installed: apt-get install {package}")
    return found
