"""The fault-proxy daemon as a part of the stack: one process hosting every link (one per
worker and dependency, plus the ingress in front of the workers)."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

from gameday.faults.proxy import ProxyClient
from gameday.stack.parts import ProcessPart
from gameday.stack.processes import StartError, free_port, pipe_lines, read_line, spawn

READY_PREFIX = "gameday-proxy control on "


class ProxyDaemon(ProcessPart):
    def __init__(self, workdir: Path) -> None:
        super().__init__("proxy", workdir)
        self.port = free_port()
        self.token = secrets.token_urlsafe(24)
        self.address = f"http://127.0.0.1:{self.port}"
        self._client: ProxyClient | None = None

    def launch(self) -> subprocess.Popen[str]:
        return spawn(
            [sys.executable, "-m", "gameday.faults.proxy", "--host", "127.0.0.1",
             "--control-port", str(self.port), "--parent-pid", str(os.getpid())],
            log=self.log, stdout_pipe=True,
            env={**os.environ, "GAMEDAY_PROXY_TOKEN": self.token, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip

    def wait_ready(self, proc: subprocess.Popen[str]) -> None:
        url = read_line(proc, READY_PREFIX, what="the fault proxy", timeout_s=20, log=self.log)
        if url != self.address:
            raise StartError(f"the fault proxy listens on {url}, expected {self.address}")
        if proc.stdout is not None:
            pipe_lines(proc.stdout)

    @property
    def client(self) -> ProxyClient:
        if self._client is None:
            self._client = ProxyClient(self.address, self.token)
        return self._client

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        super().stop()
