"""A private ``redis-server`` that keeps nothing on disk (the service must survive its
loss, so losing its data on a restart is part of the exercise)."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

from gameday.stack.parts import ProcessPart
from gameday.stack.processes import free_port, require, spawn, wait_until


class RedisServer(ProcessPart):
    def __init__(self, workdir: Path) -> None:
        super().__init__("redis", workdir)
        self.binary = require("redis-server", package="redis-server")
        self.port = free_port()
        self.address = f"redis://127.0.0.1:{self.port}/0"

    def launch(self) -> subprocess.Popen[str]:
        return spawn(
            [self.binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--protected-mode", "yes", "--dir", str(self.workdir),
             "--daemonize", "no", "--logfile", ""],
            log=self.log,
        )  # fmt: skip

    def wait_ready(self, proc: subprocess.Popen[str]) -> None:
        wait_until(self._pong, what="redis-server", proc=proc, log=self.log, timeout_s=15)

    def _pong(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False
