"""A private PostgreSQL cluster in the stack's directory.

``initdb`` creates it; the server is then started as ``postgres -D …`` directly rather than
through ``pg_ctl``, because ``pg_ctl`` daemonizes the server out of the harness's reach: as
a direct child the postmaster receives the harness's death signal, and its backends exit
on postmaster death by design. Durability is switched off (``fsync=off``): the data is
thrown away after the drill, and the drill measures the service, not the disk.
"""

from __future__ import annotations

import glob
import os
import subprocess
from pathlib import Path

from gameday.stack.parts import ProcessPart
from gameday.stack.processes import RunAs, StartError, free_port, require, spawn, wait_until

DATABASE = "bookings"


def _bin_dirs() -> list[str]:
    """Debian keeps the server programs off PATH, one directory per major version."""
    found = glob.glob("/usr/lib/postgresql/*/bin")
    return sorted(found, key=lambda d: int(Path(d).parent.name), reverse=True)


def _reachable_by(path: Path, uid: int) -> bool:
    """Whether ``uid`` (not root) may traverse every parent directory of ``path``."""
    for parent in path.parents:
        info = parent.stat()
        if info.st_uid != uid and not info.st_mode & 0o001:
            return False
    return True


class PostgresServer(ProcessPart):
    stop_grace_s = 15.0

    def __init__(self, workdir: Path, *, max_connections: int = 200) -> None:
        super().__init__("db", workdir)
        dirs = _bin_dirs()
        self.postgres = require("postgres", package="postgresql", search=dirs)
        bindir = Path(self.postgres).resolve().parent
        self.initdb = require("initdb", package="postgresql", search=[str(bindir)])
        self.isready = require("pg_isready", package="postgresql-client", search=[str(bindir)])
        self.datadir = workdir / "pgdata"
        self.port = free_port()
        self.max_connections = max_connections
        self.run_as = RunAs.account("postgres") if os.geteuid() == 0 else None
        self.address = f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE}"
        self._fresh = False
        # SIGINT is PostgreSQL's "fast" shutdown: roll back sessions, exit at once.
        self.stop_signal = 2

    def _prepare(self) -> None:
        if (self.datadir / "PG_VERSION").exists():
            return
        self._fresh = True
        self.datadir.mkdir(mode=0o700)
        if self.run_as is not None:
            os.chown(self.datadir, self.run_as.uid, self.run_as.gid)
            if not _reachable_by(self.datadir, self.run_as.uid):
                raise StartError(f"PostgreSQL runs as user postgres, which cannot reach "
                                 f"{self.datadir}: make its parent directories o+x")  # fmt: skip
        proc = spawn(
            [self.initdb, "-D", str(self.datadir), "-U", "postgres", "-A", "trust",
             "-E", "UTF8", "--no-sync", "--no-instructions"],
            log=self.log, run_as=self.run_as, cwd=self.datadir,
        )  # fmt: skip
        if proc.wait(120) != 0:
            raise StartError(f"initdb failed (see {self.log})")

    def launch(self) -> subprocess.Popen[str]:
        self._prepare()
        settings = {
            "listen_addresses": "127.0.0.1", "port": str(self.port),
            "unix_socket_directories": str(self.datadir), "fsync": "off",
            "synchronous_commit": "off", "full_page_writes": "off",
            "max_connections": str(self.max_connections), "shared_buffers": "128MB",
            "logging_collector": "off",
        }  # fmt: skip
        argv = [self.postgres, "-D", str(self.datadir)]
        for key, value in settings.items():
            argv += ["-c", f"{key}={value}"]
        return spawn(argv, log=self.log, run_as=self.run_as, cwd=self.datadir)

    def wait_ready(self, proc: subprocess.Popen[str]) -> None:
        wait_until(self._accepting, what="PostgreSQL", proc=proc, log=self.log)
        self._create_database()

    def _accepting(self) -> bool:
        probe = [self.isready, "-q", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"]
        return subprocess.run(probe, check=False, timeout=10).returncode == 0  # noqa: S603

    def _create_database(self) -> None:
        """Once, right after ``initdb``: a restart finds the database already there."""
        if not self._fresh:
            return
        createdb = str(Path(self.initdb).parent / "createdb")
        made = subprocess.run(  # noqa: S603 - fixed arguments
            [createdb, "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", DATABASE],
            capture_output=True, text=True, check=False, timeout=30,
        )  # fmt: skip
        if made.returncode != 0:
            raise StartError(f"PostgreSQL: cannot create the database: {made.stderr.strip()}")
        self._fresh = False
