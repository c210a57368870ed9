"""The wiring of the stack: which parts exist, which proxy link each worker uses for each
dependency, the workers' environment, and the alert pipeline.

Kept apart from :mod:`gameday.stack.stack` (the lifecycle) so the topology reads in one
place: ``w1 → w1.db → db``, ``w1 → w1.redis → redis``… and ``ingress → w1, w2``.
"""

from __future__ import annotations

import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import stripe

from gameday.alerts import AlertReceiver, check_rules, drill_rules, render_rules
from gameday.faults.proxy import ProxyClient, ProxyError
from gameday.stack.monitoring import Alertmanager, Prometheus
from gameday.stack.options import Pace, StackOptions
from gameday.stack.parts import ExternalPart, Part
from gameday.stack.postgres import PostgresServer
from gameday.stack.processes import StartError, free_port, require
from gameday.stack.provider import ProviderServer
from gameday.stack.proxies import ProxyDaemon
from gameday.stack.redis import RedisServer
from gameday.stack.service import ServiceWorker
from gameday.stack.smtp import SmtpSink

DEPENDENCIES = ("db", "redis", "provider", "smtp")
_DEFAULT_PORTS = {"postgresql": 5432, "postgres": 5432, "mysql": 3306, "mariadb": 3306,
                  "redis": 6379, "http": 80, "smtp": 25}  # fmt: skip


@dataclass(frozen=True)
class Secrets:
    """Per-stack credentials: random, so two stacks (or a leaked log) never share them."""

    admin_token: str
    jwt_secret: str
    gameday_password: str
    provider_key: str

    @classmethod
    def generate(cls, provider_key: str) -> Secrets:
        return cls(secrets.token_urlsafe(24), secrets.token_urlsafe(32),
                   secrets.token_urlsafe(12), provider_key)  # fmt: skip

    def env(self) -> dict[str, str]:
        return {"BOOKINGS_ADMIN_TOKEN": self.admin_token, "BOOKINGS_JWT_SECRET": self.jwt_secret,
                "BOOKINGS_GAMEDAY_PASSWORD": self.gameday_password,
                "BOOKINGS_STRIPE_API_KEY": self.provider_key}  # fmt: skip

    def as_dict(self) -> dict[str, str]:
        return {"admin_token": self.admin_token, "gameday_password": self.gameday_password,
                "provider_key": self.provider_key}  # fmt: skip


@dataclass
class Plan:
    options: StackOptions
    workdir: Path
    dependencies: dict[str, Part]
    database_url: str  # direct (migrations, checks); workers go through their proxy
    worker_ports: dict[str, int]
    monitoring: Monitoring | None
    upstreams: dict[str, str] = field(default_factory=dict)


def plan(options: StackOptions, workdir: Path) -> Plan:
    """Every part constructed (binaries looked up, ports chosen), nothing started."""
    parts: dict[str, Part] = {
        "db": ExternalPart("db", options.database_url) if options.database_url
        else PostgresServer(workdir),
        "redis": ExternalPart("redis", options.redis_url) if options.redis_url
        else RedisServer(workdir),
        "provider": ExternalPart("provider", options.provider_url) if options.provider_url
        else ProviderServer(workdir, retry_base_s=1.0 if options.pace == "fast" else 60.0),
        "smtp": ExternalPart("smtp", options.smtp_url) if options.smtp_url else SmtpSink(workdir),
        "proxy": ProxyDaemon(workdir),
    }  # fmt: skip
    monitoring = Monitoring(workdir, options.pace) if options.monitoring else None
    upstreams = {name: hostport(parts[name].address) for name in DEPENDENCIES}
    ports = {f"w{i + 1}": free_port() for i in range(options.workers)}
    return Plan(options, workdir, parts, connect_url(parts["db"]), ports, monitoring, upstreams)


def connect_url(part: Part) -> str:
    """The URL to connect with (an existing server's, password included)."""
    return part.url if isinstance(part, ExternalPart) else part.address


def hostport(url: str) -> str:
    parts = urlsplit(url)
    if not parts.hostname:
        raise StartError(f"{url!r} is not a URL with a host")
    port = parts.port or _DEFAULT_PORTS.get(parts.scheme.split("+")[0])
    if port is None:
        raise StartError(f"{url!r}: give the port explicitly")
    return f"{parts.hostname}:{port}"


def via(url: str, listen: str) -> str:
    """``url`` with its host and port replaced by a proxy link's address."""
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@{listen}" if credentials else listen
    return urlunsplit(parts._replace(netloc=netloc))


def proxy_of(parts: dict[str, Part]) -> ProxyDaemon:
    proxy = parts.get("proxy")
    if not isinstance(proxy, ProxyDaemon):
        raise StartError("the stack has no fault proxy running")
    return proxy


def make_links(plan: Plan, client: ProxyClient) -> dict[str, str]:
    links = {}
    try:
        for worker in plan.worker_ports:
            for dependency in DEPENDENCIES:
                name = f"{worker}.{dependency}"
                links[name] = client.add_link(name, [plan.upstreams[dependency]])["listen"]
        ingress = [f"127.0.0.1:{port}" for port in plan.worker_ports.values()]
        links["ingress"] = client.add_link("ingress", ingress)["listen"]
    except ProxyError as error:  # e.g. an existing server that is not on loopback
        raise StartError(f"cannot set up the fault proxy's links: {error}") from None
    return links


def register_webhook(plan: Plan, ingress_url: str) -> str:
    """The webhook endpoint at the provider, pointing at the ingress; its signing secret."""
    base = connect_url(plan.dependencies["provider"])
    provider = stripe.StripeClient(plan.options.provider_key, max_network_retries=2,
                                   base_addresses={"api": base})  # fmt: skip
    try:
        endpoint = provider.v1.webhook_endpoints.create(
            params={"url": f"{ingress_url}/webhooks/stripe", "enabled_events": ["*"]}
        )
    except stripe.StripeError as error:
        raise StartError(f"cannot register the webhook endpoint: {error}") from None
    return str(endpoint.secret)


def make_workers(
    plan: Plan, links: dict[str, str], keys: Secrets, webhook_secret: str, stack_id: str
) -> dict[str, ServiceWorker]:
    fast = plan.options.pace == "fast"
    workers = {}
    for name, port in plan.worker_ports.items():
        env = {
            "BOOKINGS_ENVIRONMENT": "local",
            "BOOKINGS_DATABASE_URL": via(plan.database_url, links[f"{name}.db"]),
            "BOOKINGS_REDIS_URL": via(
                connect_url(plan.dependencies["redis"]), links[f"{name}.redis"]
            ),
            "BOOKINGS_REDIS_KEY_PREFIX": f"gameday-{stack_id}",
            "BOOKINGS_STRIPE_API_BASE": f"http://{links[f'{name}.provider']}",
            "BOOKINGS_STRIPE_WEBHOOK_SECRET": webhook_secret,
            "BOOKINGS_SMTP_HOST": "127.0.0.1",
            "BOOKINGS_SMTP_PORT": links[f"{name}.smtp"].rsplit(":", 1)[1],
            "BOOKINGS_LOG_LEVEL": "info",
            **keys.env(),
            **(_FAST_ENV if fast else {}),
            **({"BOOKINGS_UNSAFE_NO_SAFEGUARDS": "1"} if plan.options.unsafe else {}),
            **plan.options.service_env,
        }
        workers[name] = ServiceWorker(name, plan.workdir, port, env)
    return workers


# Seconds-long outages at the fast pace: background jobs and breakers react in about a second.
_FAST_ENV = {
    "BOOKINGS_MAINTENANCE_INTERVAL_S": "1",
    "BOOKINGS_OUTBOX_RETRY_BASE_S": "0.5",
    "BOOKINGS_DB_BREAKER_RESET_S": "1",
    "BOOKINGS_REDIS_BREAKER_RESET_S": "1",
    "BOOKINGS_PROVIDER_BREAKER_RESET_S": "1",
}


class MonitorPart(Part):
    """Prometheus or Alertmanager seen as a part of the stack (process faults, state)."""

    def __init__(self, name: str, server: Alertmanager | Prometheus) -> None:
        self.name = name
        self.server = server
        self.address = server.url

    @property
    def pid(self) -> int | None:
        return self.server.pid if self.running() else None

    @property
    def managed(self) -> bool:
        return True

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        self.server.stop()

    def running(self) -> bool:
        try:
            return self.server.proc.poll() is None
        except StartError:
            return False


class Monitoring:
    """Alert receiver (in this process) → Alertmanager → Prometheus, with the drill's rules."""

    def __init__(self, workdir: Path, pace: Pace) -> None:
        require("prometheus", package="prometheus")
        require("promtool", package="prometheus")
        require("prometheus-alertmanager", package="prometheus-alertmanager")
        self.workdir = workdir
        self.pace = pace
        self.receiver = AlertReceiver(events_file=workdir / "alerts.jsonl")
        self.rules_file = workdir / "rules.yml"
        self.alertmanager: MonitorPart | None = None
        self.prometheus: MonitorPart | None = None

    def start_pipeline(self) -> None:
        self.receiver.start()
        self.rules_file.write_text(render_rules(drill_rules(self.pace)))
        check_rules(self.rules_file)
        self.alertmanager = MonitorPart("alertmanager",
                                        Alertmanager(self.workdir, self.receiver.url))  # fmt: skip
        self.alertmanager.start()

    def start_prometheus(self, jobs: dict[str, list[str]]) -> None:
        if self.alertmanager is None:
            raise StartError("the alert pipeline is not running")
        interval = 1.0 if self.pace == "fast" else 5.0
        server = Prometheus(
            self.workdir, jobs=jobs, rules_file=self.rules_file,
            alertmanager_url=self.alertmanager.address, scrape_interval_s=interval,
            evaluation_interval_s=interval,
        )  # fmt: skip
        self.prometheus = MonitorPart("prometheus", server)
        self.prometheus.start()

    def urls(self) -> dict[str, str]:
        found = {"receiver": self.receiver.url, "rules": str(self.rules_file)}
        if self.alertmanager is not None:
            found["alertmanager"] = self.alertmanager.address
        if self.prometheus is not None:
            found["prometheus"] = self.prometheus.address
        return found

    def close(self) -> None:
        """Idempotent; also stops a server started before a failure elsewhere aborted
        ``stack up`` (before it was listed among the stack's parts)."""
        for part in (self.prometheus, self.alertmanager):
            if part is not None:
                part.stop()
        self.receiver.stop()


def remove_dir(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)
