"""Clock and auth faults: the drill's clients ask for access tokens with a chosen short
lifetime, so tokens expire in the middle of a checkout flow."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from gameday.faults.base import FaultContext, Handle, check, register


@register
@dataclass(frozen=True)
class TokenExpiry:
    kind: ClassVar[str] = "token_expiry"
    target: str = "clients"
    ttl_s: float = 2.0

    def __post_init__(self) -> None:
        check(1 <= self.ttl_s <= 3600, self.kind, "ttl_s must be between 1 and 3600")

    def inject(self, ctx: FaultContext) -> Handle:
        ctx.set_client_option("token_ttl_s", self.ttl_s)
        return {}

    def heal(self, ctx: FaultContext, handle: Handle) -> None:
        ctx.set_client_option("token_ttl_s", None)
