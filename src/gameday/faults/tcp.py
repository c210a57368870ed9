"""Network faults, injected as toxics in the fault proxies between a worker and a
dependency (or in the ingress in front of the workers).

Each kind here is only its parameters and their validation — a dozen lines — so they share
one module; their behaviour lives with the proxy engine (:mod:`gameday.faults.proxy`), one
class per kind. Targets name proxy links: ``w1.db`` (one worker's link to one dependency),
``w1`` (all of one worker's links), ``db`` (every worker's database link), ``all``,
``ingress``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal

from gameday.faults.base import FaultContext, Handle, check, register

Direction = Literal["upstream", "downstream", "both"]
_DIRECTIONS = ("upstream", "downstream", "both")


@dataclass(frozen=True)
class ProxyFault:
    """Shared by every network fault: one toxic per selected link; heal removes exactly
    those toxics (another fault on the same link stays)."""

    kind: ClassVar[str]
    target: str

    def toxic(self) -> dict[str, Any]:
        params = asdict(self)
        params.pop("target")
        return {k: v for k, v in params.items() if v is not None}

    def inject(self, ctx: FaultContext) -> Handle:
        added: list[list[str]] = []
        try:
            for link in ctx.links(self.target):
                added.append([link, ctx.proxy_add_toxic(link, self.kind, self.toxic())])
        except BaseException:
            self.heal(ctx, {"toxics": added})  # all links or none
            raise
        return {"toxics": added}

    def heal(self, ctx: FaultContext, handle: Handle) -> None:
        for link, toxic_id in handle.get("toxics", []):
            ctx.proxy_remove_toxic(link, toxic_id)


@register
@dataclass(frozen=True)
class Down(ProxyFault):
    """Connections refused, open ones reset: the dependency is gone."""

    kind: ClassVar[str] = "down"


@register
@dataclass(frozen=True)
class Blackhole(ProxyFault):
    """Connections accepted, nothing ever answered: the worst outage, found by timeouts."""

    kind: ClassVar[str] = "blackhole"


@register
@dataclass(frozen=True)
class Latency(ProxyFault):
    kind: ClassVar[str] = "latency"
    ms: float = 100.0
    jitter_ms: float = 0.0
    direction: Direction = "both"

    def __post_init__(self) -> None:
        check(0 <= self.ms <= 60_000, self.kind, "ms must be between 0 and 60000")
        check(0 <= self.jitter_ms <= self.ms, self.kind, "jitter_ms must be between 0 and ms")
        check(self.direction in _DIRECTIONS, self.kind, f"direction must be one of {_DIRECTIONS}")


@register
@dataclass(frozen=True)
class Loss(ProxyFault):
    """A fraction of connections dropped or reset, or of chunks stalled (TCP cannot lose
    bytes without breaking the stream, so a stall models a retransmission)."""

    kind: ClassVar[str] = "loss"
    fraction: float = 0.2
    mode: Literal["drop", "reset", "stall"] = "drop"
    stall_ms: float = 500.0
    seed: int | None = None

    def __post_init__(self) -> None:
        check(0 <= self.fraction <= 1, self.kind, "fraction must be between 0 and 1")
        check(self.mode in ("drop", "reset", "stall"), self.kind, "mode: drop, reset or stall")
        check(0 <= self.stall_ms <= 60_000, self.kind, "stall_ms must be between 0 and 60000")


@register
@dataclass(frozen=True)
class Bandwidth(ProxyFault):
    kind: ClassVar[str] = "bandwidth"
    bytes_per_s: int = 100_000
    direction: Direction = "both"

    def __post_init__(self) -> None:
        check(self.bytes_per_s >= 1, self.kind, "bytes_per_s must be at least 1")
        check(self.direction in _DIRECTIONS, self.kind, f"direction must be one of {_DIRECTIONS}")


@register
@dataclass(frozen=True)
class ResetPeer(ProxyFault):
    """Each connection reset after a number of bytes or milliseconds."""

    kind: ClassVar[str] = "reset_peer"
    after_bytes: int | None = None
    after_ms: float | None = None

    def __post_init__(self) -> None:
        given = self.after_bytes is not None or self.after_ms is not None
        check(given, self.kind, "give after_bytes or after_ms")
        check((self.after_bytes or 0) >= 0 and (self.after_ms or 0) >= 0, self.kind,
              "after_bytes and after_ms must not be negative")  # fmt: skip


@register
@dataclass(frozen=True)
class SlowClose(ProxyFault):
    """A close reaches the other side only after a delay (half-dead connections)."""

    kind: ClassVar[str] = "slow_close"
    ms: float = 1000.0

    def __post_init__(self) -> None:
        check(0 <= self.ms <= 60_000, self.kind, "ms must be between 0 and 60000")
