"""Fault kinds ("toxics") as the engine runs them, Toxiproxy-style.

Each kind is a frozen dataclass holding only its parameters, validated once at the edge by
pydantic (so a refusal names the field), registered by name with :func:`register`, and
overriding only the hooks it needs; :class:`Toxic` itself is the no-op kind and the
template for a new one. The knobs every kind shares — its id, its direction and its random
generator — live once, in :class:`ActiveToxic`. The hooks:

- ``admit`` — once per accepted connection: forward it, hold it (accept, never answer),
  close it at once, or reset it;
- ``delay`` — once per chunk in an affected direction: seconds the chunk waits; the engine
  keeps a direction's order (release = max(now + delay, previous release));
- ``discards`` — chunks in the affected directions are thrown away;
- ``attach`` — once per connection: new ones at accept, open ones at injection;
- ``close_delay`` — seconds a close waits before it reaches the other side;
- ``takes_link_down`` — the link stops listening and resets its connections.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal, Protocol, TypeVar

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError

from gameday.faults.proxy.errors import InvalidSpec

Direction = Literal["upstream", "downstream", "both"]
Flow = Literal["upstream", "downstream"]
Admission = Literal["forward", "hold", "close", "reset"]
DIRECTIONS: tuple[Direction, ...] = ("upstream", "downstream", "both")
SEVERITY: dict[Admission, int] = {"forward": 0, "hold": 1, "close": 2, "reset": 3}
Millis = Annotated[float, Field(strict=True, ge=0, le=60_000)]


class Doomable(Protocol):
    """What ``reset_peer`` needs of a connection."""

    def reset_later(self, key: str, after_s: float | None, after_bytes: int | None) -> None: ...


@dataclass(frozen=True)
class Toxic:
    """The no-op kind: every hook leaves the connection alone."""

    __pydantic_config__: ClassVar[ConfigDict] = ConfigDict(extra="forbid")  # numbers: strict
    kind: ClassVar[str] = "noop"
    directional: ClassVar[bool] = True
    discards: ClassVar[bool] = False
    takes_link_down: ClassVar[bool] = False

    def check(self) -> None:
        """Rules across fields, after each field has passed its own."""

    def new_rng(self) -> random.Random:
        return random.Random()

    def admit(self, active: ActiveToxic) -> Admission:
        return "forward"

    def delay(self, active: ActiveToxic, marks: dict[str, float], nbytes: int, now: float) -> float:
        return 0.0

    def attach(self, active: ActiveToxic, conn: Doomable) -> None:
        return None

    def close_delay(self) -> float:
        return 0.0


@dataclass(frozen=True, slots=True)
class ActiveToxic:
    """A toxic on a link: the kind's parameters plus the shared knobs."""

    id: str
    direction: Direction
    toxic: Toxic
    rng: random.Random = field(compare=False, repr=False)

    @property
    def kind(self) -> str:
        return self.toxic.kind

    def applies(self, flow: Flow) -> bool:
        return self.direction in ("both", flow)

    def to_json(self) -> dict[str, Any]:
        params = dataclasses.asdict(self.toxic)
        if self.toxic.directional:
            params["direction"] = self.direction
        return {"id": self.id, "kind": self.kind, **params}


KINDS: dict[str, type[Toxic]] = {}
T = TypeVar("T", bound=type[Toxic])


def register(cls: T) -> T:
    KINDS[cls.kind] = cls
    return cls


@register
@dataclass(frozen=True)
class Down(Toxic):
    """The dependency is gone: connections refused, open ones reset."""

    kind: ClassVar[str] = "down"
    directional: ClassVar[bool] = False
    takes_link_down: ClassVar[bool] = True


@register
@dataclass(frozen=True)
class Blackhole(Toxic):
    """Accepted, never answered: found only by timeouts. A connection opened while the
    requests are swallowed is never connected upstream, so healing cannot revive it."""

    kind: ClassVar[str] = "blackhole"
    discards: ClassVar[bool] = True

    def admit(self, active: ActiveToxic) -> Admission:
        return "hold" if active.applies("upstream") else "forward"


@register
@dataclass(frozen=True)
class Latency(Toxic):
    kind: ClassVar[str] = "latency"
    ms: Millis = 100.0
    jitter_ms: Millis = 0.0

    def check(self) -> None:
        if self.jitter_ms > self.ms:
            raise InvalidSpec("jitter_ms", "must not exceed ms (a delay cannot be negative)")

    def delay(self, active: ActiveToxic, marks: dict[str, float], nbytes: int, now: float) -> float:
        if not self.jitter_ms:
            return self.ms / 1000
        return max(0.0, self.ms + active.rng.uniform(-self.jitter_ms, self.jitter_ms)) / 1000


@register
@dataclass(frozen=True)
class Loss(Toxic):
    """TCP cannot lose bytes without breaking the stream, so ``stall`` holds a chunk as a
    retransmission would; ``drop`` and ``reset`` lose whole new connections. With a seed
    the sequence of decisions repeats exactly."""

    kind: ClassVar[str] = "loss"
    fraction: Annotated[float, Field(strict=True, ge=0, le=1)] = 0.2
    mode: Literal["drop", "reset", "stall"] = "drop"
    stall_ms: Millis = 500.0
    seed: Annotated[int, Field(strict=True)] | None = None

    def new_rng(self) -> random.Random:
        return random.Random(self.seed)

    def admit(self, active: ActiveToxic) -> Admission:
        if self.mode == "stall" or active.rng.random() >= self.fraction:
            return "forward"
        return "close" if self.mode == "drop" else "reset"

    def delay(self, active: ActiveToxic, marks: dict[str, float], nbytes: int, now: float) -> float:
        if self.mode == "stall" and active.rng.random() < self.fraction:
            return self.stall_ms / 1000
        return 0.0


@register
@dataclass(frozen=True)
class Bandwidth(Toxic):
    """A token bucket without burst: each chunk leaves when the link would have finished
    sending it, so the rate holds per connection and direction."""

    kind: ClassVar[str] = "bandwidth"
    bytes_per_s: Annotated[int, Field(strict=True, ge=1)] = 100_000

    def delay(self, active: ActiveToxic, marks: dict[str, float], nbytes: int, now: float) -> float:
        done = max(now, marks.get(active.id, now)) + nbytes / self.bytes_per_s
        marks[active.id] = done
        return done - now


@register
@dataclass(frozen=True)
class ResetPeer(Toxic):
    """Open connections count from injection, new ones from accept; bytes in both
    directions count, and the chunk that reaches the limit is not delivered."""

    kind: ClassVar[str] = "reset_peer"
    directional: ClassVar[bool] = False
    after_bytes: Annotated[int, Field(strict=True, ge=0)] | None = None
    after_ms: Millis | None = None

    def check(self) -> None:
        if self.after_bytes is None and self.after_ms is None:
            raise InvalidSpec("after_bytes", "give after_bytes or after_ms (or both)")

    def attach(self, active: ActiveToxic, conn: Doomable) -> None:
        after_s = None if self.after_ms is None else self.after_ms / 1000
        conn.reset_later(active.id, after_s, self.after_bytes)


@register
@dataclass(frozen=True)
class SlowClose(Toxic):
    """Half-dead connections: a close reaches the other side only after ``ms``."""

    kind: ClassVar[str] = "slow_close"
    directional: ClassVar[bool] = False
    ms: Millis = 1000.0

    def close_delay(self) -> float:
        return self.ms / 1000


_ADAPTERS: dict[str, TypeAdapter[Toxic]] = {}


def _adapter(cls: type[Toxic]) -> TypeAdapter[Toxic]:
    if cls.kind not in _ADAPTERS:
        _ADAPTERS[cls.kind] = TypeAdapter(cls)
    return _ADAPTERS[cls.kind]


def parse_toxic(body: Mapping[str, object], toxic_id: str) -> ActiveToxic:
    """A toxic from its JSON description; every refusal names the field."""
    params = dict(body)
    kind = params.pop("kind", None)
    cls = KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise InvalidSpec("kind", f"unknown toxic kind {kind!r}; choose one of {sorted(KINDS)}")
    direction = params.pop("direction", "both")
    if direction not in DIRECTIONS:
        raise InvalidSpec("direction", f"must be one of {list(DIRECTIONS)}, not {direction!r}")
    if not cls.directional and direction != "both":
        raise InvalidSpec("direction", f"{kind} acts on whole connections; leave it out")
    try:
        toxic = _adapter(cls).validate_python(params)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or str(kind)
        message = first["msg"]
        if first["type"] == "unexpected_keyword_argument":
            known = [f.name for f in dataclasses.fields(cls)]
            message = f"not a parameter of {kind} (parameters: {known or 'none'})"
        raise InvalidSpec(field, message) from None
    toxic.check()
    return ActiveToxic(toxic_id, direction, toxic, toxic.new_rng())
