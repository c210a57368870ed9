"""The proxy engine: every link of one proxy process, on one event loop.

Descriptions arrive as JSON-like mappings (from the control API, or a test) and are parsed
here, once, into typed objects; every refusal is an :class:`InvalidSpec` naming the field.
Mutations are serialised by one lock, because binding a port is a suspension point and two
requests for the same name must not both pass the duplicate check.

The engine runs on whatever loop it is created on: the daemon's uvloop loop in production,
a test's own loop when a test wants it in-process.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
from collections.abc import Mapping
from typing import Annotated

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError
from pydantic.dataclasses import dataclass

from gameday.faults.proxy.errors import Conflict, InvalidSpec, NotFound
from gameday.faults.proxy.link import Link, Upstream
from gameday.faults.proxy.toxics import ActiveToxic, parse_toxic

MAX_UPSTREAMS = 16


@dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class LinkSpec:
    name: Annotated[str, Field(strict=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    upstreams: Annotated[list[str], Field(strict=True, min_length=1, max_length=MAX_UPSTREAMS)]
    listen_port: Annotated[int, Field(strict=True, ge=0, le=65535)] = 0


def parse_upstream(text: str, field: str) -> Upstream:
    """``host:port`` (``[::1]:port`` for IPv6) on this machine: the proxy relays nowhere else."""
    host, sep, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidSpec(field, f"expected host:port, got {text!r}")
    if host == "localhost":
        host = "127.0.0.1"
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise InvalidSpec(field, f"upstream must be a loopback address, got {host!r}")
    return Upstream(host, int(port))


def parse_link(body: object) -> tuple[str, int, tuple[Upstream, ...]]:
    if not isinstance(body, Mapping):
        raise InvalidSpec("", "expected a JSON object")
    try:
        spec = TypeAdapter(LinkSpec).validate_python(dict(body))
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InvalidSpec(".".join(str(p) for p in first["loc"]) or "body", first["msg"]) from None
    upstreams = tuple(parse_upstream(u, f"upstreams.{i}") for i, u in enumerate(spec.upstreams))
    return spec.name, spec.listen_port, upstreams


class ProxyEngine:
    """All links of one proxy, keyed by name."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self._links: dict[str, Link] = {}
        self._ids = itertools.count(1)
        self._lock = asyncio.Lock()

    def links(self) -> list[Link]:
        return list(self._links.values())

    def link(self, name: str) -> Link:
        link = self._links.get(name)
        if link is None:
            raise NotFound(f"no link named {name!r}", code="link_not_found")
        return link

    async def add_link(self, body: object) -> Link:
        name, port, upstreams = parse_link(body)
        async with self._lock:
            if name in self._links:
                raise Conflict(f"a link named {name!r} exists", code="link_exists")
            link = Link(name, self.host, port, upstreams)
            await link.listen()
            self._links[name] = link
            return link

    async def remove_link(self, name: str) -> None:
        async with self._lock:
            link = self.link(name)
            del self._links[name]
            await link.close()

    async def add_toxic(self, name: str, body: object) -> ActiveToxic:
        if not isinstance(body, Mapping):
            raise InvalidSpec("", "expected a JSON object")
        async with self._lock:
            link = self.link(name)
            active = parse_toxic(body, f"{body.get('kind')}_{next(self._ids)}")
            await link.add_toxic(active)
            return active

    async def remove_toxic(self, name: str, toxic_id: str) -> None:
        async with self._lock:
            await self.link(name).remove_toxics([toxic_id])

    async def clear(self, name: str) -> None:
        async with self._lock:
            link = self.link(name)
            await link.remove_toxics([active.id for active in link.toxics])

    async def close(self) -> None:
        async with self._lock:
            links, self._links = list(self._links.values()), {}
        for link in links:
            await link.close()
