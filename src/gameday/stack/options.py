"""What a stack is made of: the defaults give the private embedded stack; each URL points
that part at an existing server instead."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

Pace = Literal["fast", "real"]


@dataclass(frozen=True)
class StackOptions:
    workers: int = 2
    pace: Pace = "fast"
    database_url: str | None = None  # postgresql://… or mysql://… (MariaDB)
    redis_url: str | None = None
    provider_url: str | None = None  # another running stripe_emulator (http://…)
    provider_key: str = "sk_test_gameday_stack"
    smtp_url: str | None = None  # smtp://host:port
    monitoring: bool = True
    unsafe: bool = False  # the service with every safeguard removed (proving checks fail)
    max_fault_s: float = 3600.0
    service_env: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 1 <= self.workers <= 8:
            raise ValueError("workers must be between 1 and 8")
        if self.pace not in ("fast", "real"):
            raise ValueError("pace must be fast or real")
