"""Prometheus and Alertmanager as parts of the drill stack: real programs on loopback.

Time to detect is only honest if it goes through the same pipeline that pages a human, so
the stack runs Debian's own ``prometheus`` and ``prometheus-alertmanager`` rather than
evaluating the rules in Python. Everything is tuned for a drill measured in seconds:

* Prometheus scrapes and evaluates every second (``scrape_timeout`` equals the interval, so
  a frozen target is ``up == 0`` within one interval) and re-sends firing alerts every
  second (``--rules.alert.resend-delay=1s``); an alert it stops sending expires in
  Alertmanager four evaluations later.
* Alertmanager's ``group_wait`` is 0 (the lowest it accepts: with one group per alert and
  instance there is nothing to wait for) and ``group_interval`` 1 s. It accepts any
  ``group_interval`` above zero, but each group then flushes that often; below ~1 s the
  flushes cost CPU on a two-core machine and gain little, since Prometheus evaluates once
  a second anyway. ``--cluster.listen-address=`` turns clustering off, so it binds only
  its web port and is ready without waiting for gossip to settle.

Both are ready in well under a second, but Prometheus 2.42 hands new targets to its scrapers
on a fixed five-second tick (no flag changes it before 2.48), so the first scrape comes ~5 s
after start: start Prometheus alongside the slower parts of the stack, not after them, and
call ``wait_for_targets_up`` last. Ports are chosen at construction, so each part's ``url``
can go into the other's config before either starts.
"""

from __future__ import annotations

import time
from pathlib import Path
from subprocess import Popen
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import httpx
import yaml

from gameday.stack.processes import StartError, free_port, require, spawn, stop, tail, wait_until

START_TIMEOUT_S = 30.0


class MonitoringError(RuntimeError):
    """Prometheus or Alertmanager answered an API call with an error (message: theirs)."""


def duration(seconds: float) -> str:
    """A Prometheus/Alertmanager duration: whole seconds as ``"1s"``, else milliseconds."""
    millis = round(seconds * 1000)
    return f"{millis // 1000}s" if millis % 1000 == 0 else f"{millis}ms"


def _explained(message: str, log: Path, since: int, keep: int = 4) -> str:
    """The first line of a start error plus the ``level=error`` lines this start logged
    (from byte ``since``): both programs give their real reason a dozen lines before the
    shutdown chatter that ends the log."""
    try:
        with open(log, "rb") as source:
            source.seek(since)
            lines = source.read().decode(errors="replace").splitlines()
    except OSError:
        return message
    errors = [line for line in lines if "level=error" in line][-keep:]
    if not errors:
        return message
    return message.split(":\n", 1)[0] + ":\n  " + "\n  ".join(errors)


class _Server:
    """One monitoring program: its config file, data directory, log, port and HTTP API."""

    name = ""
    binary = ""
    package = ""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / f"{self.name}.log"
        self.config_file = workdir / f"{self.name}.yml"
        self.data_dir = workdir / f"{self.name}-data"
        self.started_in_s: float | None = None
        self._proc: Popen[str] | None = None
        self._client: httpx.Client | None = None

    @property
    def proc(self) -> Popen[str]:
        if self._proc is None:
            raise StartError(f"{self.name} is not started")
        return self._proc

    @property
    def pid(self) -> int:
        return self.proc.pid

    def config(self) -> dict[str, Any]:
        raise NotImplementedError

    def argv(self, binary: str) -> list[str]:
        raise NotImplementedError

    def start(self) -> Self:
        """Write the config, start the program and return once ``/-/ready`` answers 200.
        A part that is running is left alone; one that died (a process fault) is reaped and
        started again on the same port, so every URL handed out stays valid."""
        if self._proc is not None and self._proc.poll() is None:
            return self
        self.stop()
        binary = require(self.binary, package=self.package)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        began, log_size = time.monotonic(), self.log.stat().st_size if self.log.exists() else 0
        self._client = httpx.Client(base_url=self.url, timeout=2.0, trust_env=False)
        self._proc = spawn(self.argv(binary), log=self.log, cwd=self.workdir)
        try:
            wait_until(
                self._ready, what=self.name, proc=self._proc, log=self.log,
                timeout_s=START_TIMEOUT_S,
            )  # fmt: skip
        except StartError as exc:
            self.stop()
            raise StartError(_explained(str(exc), self.log, log_size)) from None
        except BaseException:
            self.stop()
            raise
        self.started_in_s = time.monotonic() - began
        return self

    def _ready(self) -> bool:
        try:
            return self._client is not None and self._client.get("/-/ready").status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        """Idempotent; the program gets SIGTERM, then SIGKILL after a short grace."""
        proc, client = self._proc, self._client
        self._proc = self._client = None
        if proc is not None:
            stop(proc, grace_s=5.0)
        if client is not None:
            client.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _api(self, path: str, params: dict[str, str] | None = None) -> Any:
        """The ``data`` of a JSON API answer; ``MonitoringError`` with the server's reason."""
        if self._client is None:
            raise MonitoringError(f"{self.name} is not started")
        try:
            response = self._client.get(path, params=params)
        except httpx.HTTPError as exc:
            raise MonitoringError(f"{self.name} {path}: {exc}{tail(self.log, 3)}") from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code != 200 or body is None:
            reason = response.text.strip()[:500] or f"HTTP {response.status_code}"
            raise MonitoringError(f"{self.name} {path} failed: {reason}")
        return body.get("data") if isinstance(body, dict) and "data" in body else body


class Alertmanager(_Server):
    """Routes every alert to one webhook (the harness's ``AlertReceiver``), resolved too."""

    name = "alertmanager"
    binary = "prometheus-alertmanager"
    package = "prometheus-alertmanager"

    def __init__(
        self,
        workdir: Path,
        receiver_url: str,
        *,
        group_wait_s: float = 0.0,
        group_interval_s: float = 1.0,
        repeat_interval: str = "1h",
    ) -> None:
        super().__init__(workdir)
        self.receiver_url = receiver_url
        self.group_wait_s = group_wait_s
        self.group_interval_s = group_interval_s
        self.repeat_interval = repeat_interval

    def config(self) -> dict[str, Any]:
        return {
            "route": {
                "receiver": "harness",
                "group_by": ["alertname", "job", "instance"],
                "group_wait": duration(self.group_wait_s),
                "group_interval": duration(self.group_interval_s),
                "repeat_interval": self.repeat_interval,
            },
            "receivers": [
                {
                    "name": "harness",
                    "webhook_configs": [{"url": self.receiver_url, "send_resolved": True}],
                }
            ],
        }

    def argv(self, binary: str) -> list[str]:
        return [
            binary,
            f"--config.file={self.config_file}",
            f"--storage.path={self.data_dir}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            f"--web.external-url={self.url}",
            "--cluster.listen-address=",
        ]

    def alerts(self) -> list[dict[str, Any]]:
        """The alerts Alertmanager holds now (``GET /api/v2/alerts``)."""
        found: list[dict[str, Any]] = self._api("/api/v2/alerts")
        return found


class Prometheus(_Server):
    """Scrapes the given jobs, evaluates ``rules_file`` and sends alerts to Alertmanager."""

    name = "prometheus"
    binary = "prometheus"
    package = "prometheus"

    def __init__(
        self,
        workdir: Path,
        *,
        jobs: dict[str, list[str]],
        rules_file: Path,
        alertmanager_url: str,
        scrape_interval_s: float = 1.0,
        evaluation_interval_s: float = 1.0,
    ) -> None:
        super().__init__(workdir)
        self.jobs = jobs
        self.rules_file = rules_file
        self.alertmanager_url = alertmanager_url
        self.scrape_interval_s = scrape_interval_s
        self.evaluation_interval_s = evaluation_interval_s

    def config(self) -> dict[str, Any]:
        am = urlsplit(self.alertmanager_url)
        manager: dict[str, Any] = {
            "scheme": am.scheme or "http",
            "timeout": "2s",
            "static_configs": [{"targets": [am.netloc]}],
        }
        if am.path.strip("/"):
            manager["path_prefix"] = am.path
        interval = duration(self.scrape_interval_s)
        return {
            "global": {
                "scrape_interval": interval,
                "scrape_timeout": interval,
                "evaluation_interval": duration(self.evaluation_interval_s),
            },
            "rule_files": [str(self.rules_file.resolve())],
            "alerting": {"alertmanagers": [manager]},
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": list(targets)}]}
                for job, targets in self.jobs.items()
            ],
        }

    def argv(self, binary: str) -> list[str]:
        return [
            binary,
            f"--config.file={self.config_file}",
            f"--storage.tsdb.path={self.data_dir}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            f"--web.external-url={self.url}",
            "--rules.alert.resend-delay=1s",
            "--web.enable-lifecycle",
        ]

    def targets(self) -> list[dict[str, str]]:
        """Active scrape targets: job, instance, health (up/down/unknown), last_error."""
        data = self._api("/api/v1/targets", {"state": "active"})
        return [
            {
                "job": str(t["labels"].get("job", "")),
                "instance": str(t["labels"].get("instance", "")),
                "health": str(t.get("health", "unknown")),
                "last_error": str(t.get("lastError", "")),
            }
            for t in data.get("activeTargets", [])
        ]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's samples (a scalar comes back as one sample without labels)."""
        data = self._api("/api/v1/query", {"query": expr})
        if data.get("resultType") in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        return result

    def wait_for_targets_up(self, timeout_s: float = 10.0) -> list[dict[str, str]]:
        """Every configured target scraped successfully; ``StartError`` naming those that
        are not (with Prometheus's scrape error) when the time runs out."""
        expected = sum(len(targets) for targets in self.jobs.values())
        deadline = time.monotonic() + timeout_s
        while True:  # bounded by the deadline
            found = self.targets()
            healthy = len(found) >= expected and all(t["health"] == "up" for t in found)
            # A target turns "up" a moment before its samples are committed: ask the TSDB.
            if healthy and len(self.query("up == 1")) >= expected:
                return found
            if time.monotonic() > deadline:
                down = [f"{t['job']}/{t['instance']}: {t['health']} {t['last_error']}".strip()
                        for t in found if t["health"] != "up"]  # fmt: skip
                raise StartError(f"scrape targets not up within {timeout_s:.0f} s: {down}")
            time.sleep(0.1)
