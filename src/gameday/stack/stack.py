"""The embedded drill stack: real programs on 127.0.0.1, each worker reaching each
dependency through its own fault proxy, brought up in dependency order and torn down
completely.

Start order (independent parts in parallel): databases, cache, provider, SMTP sink, the
proxy daemon and the alert pipeline → proxy links → schema and drill data → webhook
endpoint at the provider → workers → Prometheus. Every binary is looked up before anything
starts, so a missing program costs one line and leaves nothing behind.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import httpx
import structlog

from gameday.faults.registry import FaultRegistry
from gameday.stack import layout, reaper
from gameday.stack.context import StackFaultContext
from gameday.stack.options import StackOptions
from gameday.stack.parts import Part, ProcessPart
from gameday.stack.processes import StartError, wait_until
from gameday.stack.service import ServiceWorker, bookings_command
from gameday.stack.state import FAULTS, ensure_root, root, start_ticks, sweep, write_state

log = structlog.get_logger("gameday.stack")
Progress = Callable[[str], None]


class Stack:
    """Use as a context manager (``with Stack(options) as stack:``) or ``up()``/``down()``.

    ``parts`` maps names (``db``, ``redis``, ``provider``, ``smtp``, ``proxy``, ``w1``…,
    ``alertmanager``, ``prometheus``) to parts; ``faults`` is the registry of active faults.
    """

    def __init__(self, options: StackOptions | None = None, progress: Progress | None = None):
        self.options = options or StackOptions()
        self.progress = progress or (lambda _message: None)
        self.id = f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{os.getpid()}-{secrets.token_hex(2)}"
        self.dir = root() / self.id
        self.parts: dict[str, Part] = {}
        self.links: dict[str, str] = {}  # link name -> "127.0.0.1:port"
        self.secrets = layout.Secrets.generate(self.options.provider_key)
        self.client_options: dict[str, Any] = {}
        self.started_at = datetime.now(UTC)
        self.faults: FaultRegistry | None = None
        self._ctx = StackFaultContext(self)
        self._lock = threading.RLock()
        self.monitoring: layout.Monitoring | None = None
        self.control: dict[str, str] = {}  # set by the control server when one runs
        self._reaper: subprocess.Popen[bytes] | None = None
        self.database_url = ""  # direct, not through a proxy link: for checks and repairs
        self.webhook_secret = ""  # to sign deliveries the drill makes itself (replays)

    # ---------------------------------------------------------------- lifecycle

    def __enter__(self) -> Stack:
        return self.up()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.down()

    def up(self) -> Stack:
        swept = sweep()
        if swept:
            self.progress(f"removed {len(swept)} stack(s) left by a harness that died")
        plan = layout.plan(self.options, self.dir)  # binaries looked up: nothing started yet
        ensure_root()
        self.dir.mkdir(mode=0o711)
        self._write_state()
        self._reaper = reaper.start(os.getpid(), self.dir)
        try:
            self._start(plan)
        except BaseException:
            self.down()
            raise
        return self

    def _start(self, plan: layout.Plan) -> None:
        self.faults = FaultRegistry(self._ctx, persist_to=self.dir / FAULTS,
                                    max_duration_s=self.options.max_fault_s)  # fmt: skip
        self.parts.update(plan.dependencies)
        self.monitoring = plan.monitoring
        starts = [p.start for p in plan.dependencies.values()]
        if self.monitoring is not None:
            starts.append(self.monitoring.start_pipeline)
        self.progress("starting " + ", ".join(plan.dependencies) + " and the alert pipeline")
        _parallel(starts)
        if self.monitoring is not None and self.monitoring.alertmanager is not None:
            self.parts["alertmanager"] = self.monitoring.alertmanager
        self._write_state()
        self.links = layout.make_links(plan, self.proxy_client)
        self.progress("migrating the schema")
        self.database_url = plan.database_url
        env = {"BOOKINGS_DATABASE_URL": plan.database_url}
        bookings_command(["migrate"], env=env, log=self.dir / "migrate.log")
        self.webhook_secret = secret = layout.register_webhook(plan, self.ingress_url)
        workers = layout.make_workers(plan, self.links, self.secrets, secret, self.id)
        self.parts.update(workers)
        # The workers need the schema, not the data: seed while they boot.
        jobs: list[Callable[[], None]] = [w.start for w in workers.values()]
        jobs.append(lambda: self._seed(env))
        if self.monitoring is not None:
            # Prometheus picks up new targets on a 5 s tick (2.42): start it with the
            # workers, not after them, and that tick passes while they boot.
            jobs.append(lambda: self._start_prometheus(self._scrape_jobs()))
        self.progress(f"seeding; starting {len(workers)} bookings workers and Prometheus")
        _parallel(jobs)
        self._write_state()
        self.wait_ready()
        self._write_state()

    def _seed(self, env: dict[str, str]) -> None:
        bookings_command(["seed", "--gameday"], env={**env, **self.secrets.env()},
                         log=self.dir / "seed.log")  # fmt: skip

    def _start_prometheus(self, jobs: dict[str, list[str]]) -> None:
        if self.monitoring is not None:
            self.monitoring.start_prometheus(jobs)
            if self.monitoring.prometheus is not None:
                self.parts["prometheus"] = self.monitoring.prometheus

    def down(self) -> list[str]:
        """Heal every fault, stop every process (workers first), remove the directory.
        Returns what could not be undone (one line each); never raises."""
        errors: list[str] = []
        # Outside the stack's lock: healing (a restart) takes it to refresh the state file.
        faults, self.faults = self.faults, None
        if faults is not None:
            errors += faults.close()
        with self._lock:
            if self.options.database_url and "w1" in self.parts:
                errors += _try(self._cleanup_external_data)
            order = [n for n in self.parts if n.startswith("w")] + ["prometheus", "alertmanager"]
            order += [n for n in self.parts if n not in order]
            for name in order:
                part = self.parts.pop(name, None)
                if part is not None:
                    errors += _try(part.stop)
            if self.monitoring is not None:
                errors += _try(self.monitoring.close)
                self.monitoring = None
            layout.remove_dir(self.dir)
            reaper_proc, self._reaper = self._reaper, None
            if reaper_proc is not None:  # it sees the directory gone and exits
                errors += _try(lambda: reaper_proc.wait(5))
        return errors

    def _cleanup_external_data(self) -> None:
        bookings_command(["cleanup", "--gameday"], log=self.dir / "cleanup.log",
                         env={"BOOKINGS_DATABASE_URL": str(self.options.database_url)})  # fmt: skip

    # ---------------------------------------------------------------- queries

    @property
    def proxy_client(self) -> Any:
        return layout.proxy_of(self.parts).client

    @property
    def workers(self) -> dict[str, ServiceWorker]:
        return {n: p for n, p in self.parts.items() if isinstance(p, ServiceWorker)}

    @property
    def ingress_url(self) -> str:
        return f"http://{self.links['ingress']}"

    @property
    def provider_url(self) -> str:
        """The provider's API, direct (the workers reach it through their proxy links)."""
        return layout.connect_url(self.part("provider"))

    def worker_urls(self) -> dict[str, str]:
        return {name: worker.address for name, worker in self.workers.items()}

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        for name, worker in self.workers.items():
            wait_until(lambda w=worker: w.health()[0] == 200,  # type: ignore[misc]
                       what=f"worker {name} /health/ready", proc=worker.proc,
                       timeout_s=timeout_s, log=worker.log)  # fmt: skip

    def login(self, email: str = "customer01@gameday.invalid") -> dict[str, str]:
        """Authorization headers for a drill user, through the ingress. While a
        ``token_expiry`` fault is active the token lives only that fault's ``ttl_s``."""
        body: dict[str, Any] = {"email": email, "password": self.secrets.gameday_password}
        if self.client_options.get("token_ttl_s"):
            body["ttl_s"] = self.client_options["token_ttl_s"]
        answer = httpx.post(f"{self.ingress_url}/auth/token", json=body, timeout=10)
        if answer.status_code != 200:
            raise StartError(f"login as {email} failed: {answer.status_code} {answer.text[:200]}")
        return {"Authorization": f"Bearer {answer.json()['access_token']}"}

    def part(self, name: str) -> Part:
        try:
            return self.parts[name]
        except KeyError:
            raise StartError(f"no part {name!r}; parts: {', '.join(self.parts)}") from None

    def _scrape_jobs(self) -> dict[str, list[str]]:
        proxy = layout.proxy_of(self.parts).address
        jobs = {"bookings": [w.address.removeprefix("http://") for w in self.workers.values()],
                "gameday_proxy": [proxy.removeprefix("http://")]}  # fmt: skip
        provider = self.parts.get("provider")
        if isinstance(provider, ProcessPart):
            jobs["stripe_emulator"] = [provider.address.removeprefix("http://")]
        return jobs

    def state(self) -> dict[str, Any]:
        parts = {}
        for name, part in self.parts.items():
            pid = part.pid if part.running() else None
            parts[name] = {"address": part.address, "pid": pid, "managed": part.managed,
                           "start": start_ticks(pid) if pid else None}  # fmt: skip
        return {
            "id": self.id, "dir": str(self.dir), "owner_pid": os.getpid(),
            "owner_start": start_ticks(os.getpid()), "started_at": self.started_at.isoformat(),
            "pace": self.options.pace, "parts": parts, "links": self.links,
            "ingress": self.ingress_url if "ingress" in self.links else None,
            "workers": self.worker_urls(), "control": self.control,
            "monitoring": self.monitoring.urls() if self.monitoring else {},
            "secrets": self.secrets.as_dict(), "client_options": self.client_options,
            "database_url": self.database_url,
            "provider": self.provider_url if "provider" in self.parts else None,
        }  # fmt: skip

    def _write_state(self) -> None:
        if self.dir.exists():
            write_state(self.dir, self.state())

    def refresh_state(self) -> None:
        with self._lock:
            self._write_state()


def _parallel(jobs: list[Callable[[], None]]) -> None:
    """Run start jobs at once; the first error (if any) is raised after all have ended."""
    pool = ThreadPoolExecutor(max_workers=max(1, len(jobs)))
    futures = [pool.submit(job) for job in jobs]
    try:
        wait(futures)
    except BaseException:
        # Interrupted (Ctrl-C): let the jobs end, so teardown sees every part they started.
        wait(futures)
        raise
    finally:
        pool.shutdown(wait=False)
    for future in futures:
        future.result()


def _try(action: Callable[[], object]) -> list[str]:
    try:
        action()
    except Exception as error:  # teardown reports every failure and goes on
        return [str(error)]
    return []


def wait_for(predicate: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()
