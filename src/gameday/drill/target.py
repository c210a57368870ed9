"""The system a drill runs against: where it answers, how to log in, where its state is.

The embedded stack builds one from its own parts; ``--target PROFILE.yaml`` describes a
team's system the same way (the reference service's shape of requests, its own paths,
credentials from environment variables so no secret sits in a file). Load only ever goes
to loopback addresses: a profile naming another host is refused here, before anything runs.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml

from gameday.alerts import MetricNames

CUSTOMERS = tuple(f"customer{i:02d}@gameday.invalid" for i in range(1, 21))
SAFEGUARD_FLAGS = ("PAYMENT_IDEMPOTENCY_ENFORCED", "BOOKING_ATOMIC_LOCKING",
                   "REDIS_OPTIONAL_FALLBACK", "WEBHOOK_DEDUP_ENABLED")  # fmt: skip
PREMIUM = tuple(f"premium{i:02d}@gameday.invalid" for i in range(1, 11))


class TargetError(ValueError):
    """A profile that cannot be used; the message names the field."""


@dataclass(frozen=True, slots=True)
class Paths:
    login: str = "/auth/token"
    refresh: str = "/auth/refresh"
    resources: str = "/resources"
    availability: str = "/resources/{id}/availability"
    hold: str = "/bookings"
    booking: str = "/bookings/{id}"
    pay: str = "/bookings/{id}/payment"
    webhook: str = "/webhooks/stripe"
    ready: str = "/health/ready"
    live: str = "/health/live"
    flags: str = "/admin/flags"


@dataclass
class Target:
    name: str
    base_url: str
    instances: dict[str, str]
    password: str
    admin_token: str
    customers: tuple[str, ...] = CUSTOMERS
    premium: tuple[str, ...] = PREMIUM
    paths: Paths = field(default_factory=Paths)
    safeguard_flags: tuple[str, ...] = SAFEGUARD_FLAGS
    """Feature flags that must be on before a drill (the pre-flight checks them)."""
    database_url: str = ""
    provider_url: str = ""
    provider_key: str = ""
    webhook_secret: str = ""
    metric_names: MetricNames = field(default_factory=MetricNames)
    prometheus_url: str = ""
    alertmanager_url: str = ""
    embedded: bool = False

    def describe(self) -> dict[str, Any]:
        """For the journal: where, never credentials (a URL's user:password is dropped)."""
        return {
            "name": self.name, "base_url": _public(self.base_url),
            "instances": {n: _public(u) for n, u in self.instances.items()},
            "embedded": self.embedded, "database": bool(self.database_url),
            "provider": _public(self.provider_url) or None,
            "prometheus": _public(self.prometheus_url) or None,
            "alertmanager": _public(self.alertmanager_url) or None,
        }  # fmt: skip


def _public(url: str) -> str:
    parts = urlsplit(url)
    if not parts.netloc or "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def require_loopback(url: str, what: str) -> None:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise TargetError(f"{what} {url!r} is not on this machine: drills send load to loopback only")


_KNOWN = {
    "name",
    "base_url",
    "instances",
    "password_env",
    "admin_token_env",
    "customers",
    "premium",
    "paths",
    "safeguard_flags",
    "database_url_env",
    "provider",
    "webhook_secret_env",
    "metrics",
    "prometheus_url",
    "alertmanager_url",
}


def load_profile(path: Path) -> Target:
    """A target profile (YAML). Secrets are named by environment variable, never inlined."""
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as error:
        raise TargetError(f"cannot read {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise TargetError(f"{path}: not YAML: {error}") from None
    if not isinstance(data, dict):
        raise TargetError(f"{path}: expected a mapping at the top")
    unknown = sorted(set(data) - _KNOWN)
    if unknown:
        raise TargetError(
            f"{path}: unknown field `{unknown[0]}`; known: {', '.join(sorted(_KNOWN))}"
        )

    def text(key: str, required: bool = True) -> str:
        value = data.get(key, "")
        if not isinstance(value, str) or (required and not value):
            raise TargetError(f"{path}: `{key}` must be a non-empty string")
        return value

    def env(key: str, required: bool = True) -> str:
        name = data.get(key)
        if name is None and not required:
            return ""
        if not isinstance(name, str) or not name:
            raise TargetError(f"{path}: `{key}` must name an environment variable")
        value = os.environ.get(name, "")
        if required and not value:
            raise TargetError(f"{path}: environment variable {name} (from `{key}`) is not set")
        return value

    base_url = text("base_url").rstrip("/")
    require_loopback(base_url, "base_url")
    instances = data.get("instances") or {}
    if not isinstance(instances, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in instances.items()
    ):
        raise TargetError(f"{path}: `instances` must map names to URLs")
    for name, url in instances.items():
        require_loopback(url, f"instances.{name}")
    provider = data.get("provider") or {}
    if not isinstance(provider, dict) or set(provider) - {"url", "key_env"}:
        raise TargetError(f"{path}: `provider` takes `url` and `key_env`")
    return Target(
        name=text("name"),
        base_url=base_url,
        instances=dict(instances),
        password=env("password_env"),
        admin_token=env("admin_token_env", required=False),
        customers=_strings(path, data, "customers", CUSTOMERS),
        premium=_strings(path, data, "premium", PREMIUM),
        paths=_dataclass(path, Paths, data.get("paths"), "paths"),
        safeguard_flags=_strings(path, data, "safeguard_flags", SAFEGUARD_FLAGS),
        database_url=env("database_url_env", required=False),
        provider_url=str(provider.get("url", "")),
        provider_key=os.environ.get(str(provider.get("key_env", "")), ""),
        webhook_secret=env("webhook_secret_env", required=False),
        metric_names=_dataclass(path, MetricNames, data.get("metrics"), "metrics"),
        prometheus_url=text("prometheus_url", required=False),
        alertmanager_url=text("alertmanager_url", required=False),
    )


def _strings(
    path: Path, data: dict[str, Any], key: str, default: tuple[str, ...]
) -> tuple[str, ...]:
    value = data.get(key)
    if value is None:
        return default
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise TargetError(f"{path}: `{key}` must be a non-empty list of strings")
    return tuple(value)


def _dataclass(path: Path, cls: Any, value: Any, key: str) -> Any:
    if value is None:
        return cls()
    names = {f.name for f in fields(cls)}
    if not isinstance(value, dict):
        raise TargetError(f"{path}: `{key}` must be a mapping")
    unknown = sorted(set(value) - names)
    if unknown:
        raise TargetError(
            f"{path}: unknown field `{key}.{unknown[0]}`; known: {', '.join(sorted(names))}"
        )
    if not all(isinstance(v, str) for v in value.values()):
        raise TargetError(f"{path}: every `{key}` value must be a string")
    return cls(**value)
