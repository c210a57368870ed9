"""Read-only clients for a team's own Prometheus and Alertmanager, and the metric snapshots
the drill report compares before, during and after each scenario (playbook 003's table).

A drill against an external target cannot bring its own monitoring, so it reads the team's
(``--prometheus-url`` / ``--alertmanager-url``). Every call is a GET, so any URL is accepted,
not only loopback; every call has a bounded timeout; every failure is one ``PromError`` line
naming the URL and the server's own reason (``bad_data: 1:9: parse error: …``), because a
drill report with a traceback in it helps nobody at 3 a.m. Proxies from the environment are
honoured for remote URLs and ignored for loopback ones (a corporate ``HTTP_PROXY`` must not
swallow ``127.0.0.1``).

The snapshot's PromQL is built from the rules' own selectors (``Selectors``, ``rate_sum``),
so a snapshot and an alert can never disagree about which traffic counts. Snapshot ratios
sum over every job (one number per signal, for a table); only memory is per instance.
``process_resident_memory_bytes`` is the name every official client library exports by
default, but the reference service and the emulator use private registries without a process
collector, so against them that row is empty (``None``), not an error.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import httpx

from gameday.alerts.rules import MetricNames, Selectors, rate_sum

RESIDENT_MEMORY = "process_resident_memory_bytes"
CONNECT_TIMEOUT_S = 3.0


class PromError(RuntimeError):
    """A Prometheus or Alertmanager call failed: one line, the URL and the server's reason."""


@dataclass(frozen=True, slots=True)
class Sample:
    labels: dict[str, str]
    value: float
    """Prometheus' ``NaN`` (e.g. 0/0) and ``±Inf`` arrive as the float values."""


@dataclass(frozen=True, slots=True)
class Series:
    labels: dict[str, str]
    points: list[tuple[float, float]]
    """(unix time in seconds, value), oldest first."""


def _one_line(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _unix(at: datetime) -> float:
    """A naive ``datetime`` is taken as UTC, as Prometheus itself would."""
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()


class _Api:
    """One server's HTTP API: base URL (a route prefix is kept), timeouts, error wording."""

    what = ""

    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise PromError(f"{self.what} URL must look like http://host:port, got {url!r}")
        # Shown in messages, so without any ``user:password@``.
        self.url = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl().rstrip("/")
        self.timeout_s = timeout_s
        try:
            self._http = httpx.Client(
                base_url=url,
                timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, CONNECT_TIMEOUT_S)),
                trust_env=not _is_loopback(parts.hostname),
            )
        except (httpx.InvalidURL, ValueError) as error:
            raise PromError(f"{self.what} URL {self.url!r}: {error}") from None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def ready(self) -> bool:
        """``/-/ready`` answers 200: up and serving (for Prometheus: its TSDB is open)."""
        try:
            return self._http.get("/-/ready").status_code == 200
        except httpx.HTTPError:
            return False

    def _get(self, path: str, params: dict[str, str] | None = None) -> Any:
        """The JSON body of a 200 answer; anything else is a ``PromError`` in the server's
        words (Prometheus: ``errorType: error``; Alertmanager: ``message``)."""
        try:
            response = self._http.get(path, params=params)
        except httpx.ConnectError as exc:
            why = "connection refused" if "refused" in str(exc).lower() else _one_line(str(exc))
            raise PromError(f"cannot reach {self.what} at {self.url}: {why}") from None
        except httpx.TimeoutException:
            raise PromError(
                f"{self.what} at {self.url} did not answer {path} within {self.timeout_s:g} s"
            ) from None
        except httpx.HTTPError as exc:
            raise PromError(f"{self.what} {self.url}{path}: {_one_line(str(exc))}") from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code == 200 and body is not None:
            return body
        reason = f"HTTP {response.status_code}, not a {self.what} API answer"
        if isinstance(body, dict) and "error" in body:
            reason = f"{body.get('errorType', 'error')}: {body['error']}"
        elif isinstance(body, dict) and "message" in body:
            reason = str(body["message"])
        elif response.text.strip() and response.status_code != 200:
            reason = f"HTTP {response.status_code}: {response.text}"
        raise PromError(f"{self.what} {self.url}{path}: {_one_line(reason)}")


class PrometheusClient(_Api):
    """The drill's reads from a Prometheus: queries, rule health and active alerts."""

    what = "Prometheus"

    def _data(self, path: str, params: dict[str, str] | None = None) -> Any:
        body = self._get(path, params)
        if not isinstance(body, dict) or body.get("status") != "success" or "data" not in body:
            raise PromError(f"{self.what} {self.url}{path}: unexpected answer {body!r:.200}")
        return body["data"]

    def query(self, expr: str, at: datetime | None = None) -> list[Sample]:
        """An instant query (now, or at ``at``); a scalar is one sample without labels."""
        params = {"query": expr} | ({"time": f"{_unix(at):.3f}"} if at else {})
        data = self._data("/api/v1/query", params)
        kind, result = data.get("resultType"), data.get("result")
        try:
            if kind == "vector":
                return [Sample(dict(r["metric"]), float(r["value"][1])) for r in result]
            if kind == "scalar":
                return [Sample({}, float(result[1]))]
        except (KeyError, IndexError, TypeError, ValueError):
            raise PromError(f"{self.what} {self.url}: malformed {kind} for {expr!r}") from None
        raise PromError(f"{self.what} {self.url}: {expr!r} gives a {kind}, not a number")

    def query_range(self, expr: str, start: datetime, end: datetime, step_s: float) -> list[Series]:
        params = {"query": expr, "start": f"{_unix(start):.3f}", "end": f"{_unix(end):.3f}",
                  "step": f"{step_s:g}"}  # fmt: skip
        data = self._data("/api/v1/query_range", params)
        try:
            return [
                Series(dict(r["metric"]), [(float(t), float(v)) for t, v in r["values"]])
                for r in data["result"]
            ]
        except (KeyError, TypeError, ValueError):
            raise PromError(f"{self.what} {self.url}: malformed range for {expr!r}") from None

    def scalar(self, expr: str, at: datetime | None = None) -> float | None:
        """The first sample's value; None when there is none or it is NaN (no data to
        compare: a threshold check on NaN would silently pass)."""
        samples = self.query(expr, at)
        if not samples or math.isnan(samples[0].value):
            return None
        return samples[0].value

    def rules(self) -> list[dict[str, str]]:
        """Every loaded rule: name, group, type, state (alerting rules only), health,
        lastError — a rule whose health is not ``ok`` can never fire."""
        data = self._data("/api/v1/rules")
        return [
            {"name": str(r.get("name", "")), "group": str(g.get("name", "")),
             "type": str(r.get("type", "")), "state": str(r.get("state", "")),
             "health": str(r.get("health", "")), "lastError": str(r.get("lastError", ""))}
            for g in data.get("groups", []) for r in g.get("rules", [])
        ]  # fmt: skip

    def alerts(self) -> list[dict[str, Any]]:
        """Pending and firing alerts as Prometheus sees them (before Alertmanager)."""
        data = self._data("/api/v1/alerts")
        return [
            {"name": a.get("labels", {}).get("alertname", ""), "state": a.get("state", ""),
             "activeAt": a.get("activeAt", ""), "labels": dict(a.get("labels", {})),
             "value": a.get("value", "")}
            for a in data.get("alerts", [])
        ]  # fmt: skip


class AlertmanagerClient(_Api):
    """What Alertmanager holds: the alerts that reached the paging pipeline."""

    what = "Alertmanager"

    def alerts(self, active_only: bool = True) -> list[dict[str, Any]]:
        """``active_only`` leaves out silenced and inhibited alerts (nobody was paged)."""
        params = {"active": "true", "silenced": "false", "inhibited": "false"}
        found = self._get("/api/v2/alerts", params if active_only else None)
        if not isinstance(found, list):
            raise PromError(f"{self.what} {self.url}/api/v2/alerts: unexpected {found!r:.200}")
        return [
            {"name": a.get("labels", {}).get("alertname", ""),
             "state": a.get("status", {}).get("state", ""), "startsAt": a.get("startsAt", ""),
             "endsAt": a.get("endsAt", ""), "labels": dict(a.get("labels", {}))}
            for a in found
        ]  # fmt: skip


def snapshot_queries(names: MetricNames, window: str) -> dict[str, str]:
    """PromQL per snapshot row. A numerator that may not exist yet (no 5xx ever, no hit
    ever) counts as 0, so a healthy service shows 0 % errors rather than no data."""
    s, n = Selectors.of(names), names

    def total(metric: str, selector: str, by: str | None = None) -> str:
        return rate_sum(metric, selector, window, by)

    def ratio(metric: str, part: str, whole: str) -> str:
        return f"({total(metric, part)} or vector(0))\n  / {total(metric, whole)}"

    def quantile(q: float) -> str:
        return f"histogram_quantile({q}, {total(n.latency_bucket, s.users, 'le')})"

    error_ratio = ratio(n.requests, s.errors, s.users)
    return {
        "request_rate": total(n.requests, s.users),
        "error_ratio": error_ratio,
        "availability": f"1 - (\n  {error_ratio}\n)",
        "latency_p95_s": quantile(0.95),
        "latency_p99_s": quantile(0.99),
        "cache_hit_ratio": ratio(n.cache_requests, s.hits, ""),
        "db_pool_utilisation": f"max({n.db_pool_in_use} / {n.db_pool_size})",
        "redis_up": f"min({n.redis_up})",
        "webhook_failure_ratio": ratio(n.requests, s.failed, s.hook),
        "lock_timeouts": f"sum(delta({n.lock_timeouts}[{window}]))",
        "resident_memory_bytes": f"sum by (job, instance) ({RESIDENT_MEMORY})",
        "targets_up": "sum(up)",
    }


@dataclass(frozen=True, slots=True)
class Snapshot:
    at: datetime
    values: dict[str, float | None]
    """None: no data (no series, or 0/0). A query that keeps labels (memory, per instance)
    gives one key per series, ``name{instance="…",job="…"}``."""
    errors: dict[str, str] = field(default_factory=dict)
    """Query name → the one-line reason it failed (its value is None)."""

    def to_json(self) -> dict[str, Any]:
        """Infinities (a quantile beyond the last bucket) as ``"+Inf"``: JSON has none."""

        def plain(v: float | None) -> float | str | None:
            return v if v is None or math.isfinite(v) else ("+Inf" if v > 0 else "-Inf")

        values = {k: plain(v) for k, v in self.values.items()}
        return {"at": self.at.isoformat(), "values": values, "errors": dict(self.errors)}


def snapshot(
    client: PrometheusClient, queries: dict[str, str], at: datetime | None = None
) -> Snapshot:
    """One instant query per row, all at the same instant, so the rows describe one moment
    even when the queries take a while; a failed row is None and its reason is kept."""
    when = at or datetime.now(UTC)
    values: dict[str, float | None] = {}
    errors: dict[str, str] = {}
    for name, expr in queries.items():
        try:
            samples = client.query(expr, when)
        except PromError as error:
            values[name], errors[name] = None, str(error)
            continue
        if not samples:
            values[name] = None
        for sample in samples:
            inner = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            key = f"{name}{{{inner}}}" if inner else name
            values[key] = None if math.isnan(sample.value) else sample.value
    return Snapshot(when, values, errors)
