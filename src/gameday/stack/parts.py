"""What every part of the stack has in common: a name, an address, and — when the harness
started it — one process that process faults can kill, pause and restart.

A part pointed at an existing server (``--database-url`` and friends) is an
:class:`ExternalPart`: it has an address but no process, and process faults refuse it
rather than pretending.
"""

from __future__ import annotations

import signal
import subprocess
from abc import ABC, abstractmethod
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from gameday.stack.processes import StartError, stop


class Part(ABC):
    """One program of the stack. ``address`` is what clients connect to (a URL)."""

    name: str
    address: str = ""

    @property
    def pid(self) -> int | None:
        return None

    @property
    def managed(self) -> bool:
        """True when the harness owns the process (and may kill, pause or restart it)."""
        return False

    def start(self) -> None:
        return None

    def stop(self) -> None:
        return None

    def running(self) -> bool:
        return True

    def restart(self) -> None:
        self.stop()
        self.start()


class ExternalPart(Part):
    """``url`` is what the stack connects with; ``address`` (shown, written to the state
    file) has any password masked."""

    def __init__(self, name: str, url: str) -> None:
        self.name = name
        self.url = url
        parts = urlsplit(url)
        if parts.password:
            netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
            self.address = urlunsplit(parts._replace(netloc=netloc))
        else:
            self.address = url


class ProcessPart(Part):
    """A part whose program runs as a child of the harness, logging to ``<dir>/<name>.log``.

    Subclasses implement :meth:`launch` (start the program) and :meth:`wait_ready`, and
    keep the same port across restarts, so that every client and proxy stays valid. A
    program that does not become ready is stopped before the error propagates.
    """

    stop_signal: int = signal.SIGTERM
    stop_grace_s: float = 10.0

    def __init__(self, name: str, workdir: Path) -> None:
        self.name = name
        self.workdir = workdir
        self.log = workdir / f"{name}.log"
        self.proc: subprocess.Popen[str] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def managed(self) -> bool:
        return True

    @abstractmethod
    def launch(self) -> subprocess.Popen[str]: ...

    @abstractmethod
    def wait_ready(self, proc: subprocess.Popen[str]) -> None: ...

    def start(self) -> None:
        if self.running():
            return
        if self.proc is not None:  # died (killed by a fault): reap it, close its pipes
            stop(self.proc)
        try:
            self.proc = self.launch()
        except OSError as error:
            raise StartError(f"{self.name}: {error}") from error
        try:
            self.wait_ready(self.proc)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc, sig=self.stop_signal, grace_s=self.stop_grace_s)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None
