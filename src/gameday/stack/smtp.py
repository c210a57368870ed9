"""The SMTP sink: ``aiosmtpd`` as its own process, storing every message in a Maildir so
the harness can count confirmation emails (exactly once per confirmed booking)."""

from __future__ import annotations

import mailbox
import subprocess
import sys
from pathlib import Path

from gameday.stack.parts import ProcessPart
from gameday.stack.processes import free_port, listening, spawn, wait_until


class SmtpSink(ProcessPart):
    def __init__(self, workdir: Path) -> None:
        super().__init__("smtp", workdir)
        self.port = free_port()
        self.maildir = workdir / "mail"
        self.address = f"smtp://127.0.0.1:{self.port}"

    def launch(self) -> subprocess.Popen[str]:
        return spawn(
            [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{self.port}",
             "-c", "aiosmtpd.handlers.Mailbox", str(self.maildir)],
            log=self.log,
        )  # fmt: skip

    def wait_ready(self, proc: subprocess.Popen[str]) -> None:
        wait_until(lambda: listening(self.port), what="the SMTP sink", proc=proc, log=self.log)

    def messages(self) -> int:
        if not self.maildir.exists():
            return 0
        return len(mailbox.Maildir(self.maildir, create=False))
