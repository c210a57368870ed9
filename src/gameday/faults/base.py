"""The nemesis's vocabulary: a fault kind is a frozen dataclass of its parameters with
``inject(ctx) -> handle`` and ``heal(ctx, handle)``.

``inject`` returns a JSON-able *handle* — what it changed (toxic ids, paused pids, a file
path) — instead of keeping state on the fault. The registry persists handles next to the
stack, so a harness killed with ``kill -9`` leaves enough behind for the next ``stack up``
to undo what the proxies' and children's own deaths do not (a disk-fill file). ``heal``
must be idempotent: it may run twice (timer and exit) and after the target is gone.

Kinds register by name in :data:`KINDS` with :func:`register`, so the CLI and scenario
files can say ``latency`` and parameters by field name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Protocol, TypeVar

from gameday.faults.errors import FaultError

Handle = dict[str, Any]


class FaultContext(Protocol):
    """What a fault may touch; the stack implements it."""

    def links(self, target: str) -> list[str]:
        """Proxy link names (``w1.db``) selected by a target (``w1.db``, ``w1``, ``db``,
        ``all``, ``ingress``)."""
        ...

    def proxy_add_toxic(self, link: str, kind: str, params: Mapping[str, Any]) -> str: ...

    def proxy_remove_toxic(self, link: str, toxic_id: str) -> None: ...

    def process_names(self, target: str) -> list[str]:
        """Part names (``w1``, ``db``) selected by a target (``w1``, ``workers``, ``db``)."""
        ...

    def pid_of(self, part: str) -> int | None: ...

    def restart(self, part: str) -> None: ...

    def ensure_running(self, part: str) -> None: ...

    def spawn_load(self, argv: list[str], name: str) -> int:
        """Start a bounded helper process (CPU burn, memory hog) that dies with the stack."""
        ...

    def set_client_option(self, name: str, value: Any) -> None:
        """Options the load clients read (e.g. the access-token lifetime)."""
        ...

    def budget_s(self) -> float:
        """Seconds left before the fault being injected is healed (helpers stop then)."""
        ...

    def data_dir(self) -> str:
        """The stack's directory: the default place a disk fills up."""
        ...


class Fault(Protocol):
    kind: ClassVar[str]
    target: str

    def inject(self, ctx: FaultContext) -> Handle: ...

    def heal(self, ctx: FaultContext, handle: Handle) -> None: ...


F = TypeVar("F", bound=type[Any])
KINDS: dict[str, type[Any]] = {}


def register(cls: F) -> F:
    KINDS[cls.kind] = cls
    return cls


def build(kind: str, target: str, params: Mapping[str, Any]) -> Fault:
    """A fault from its kind name and parameters (CLI, control API, scenario files), with
    errors that name the kind, the field and what was expected."""
    cls = KINDS.get(kind)
    if cls is None:
        raise FaultError(f"unknown fault kind {kind!r}; known: {', '.join(sorted(KINDS))}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(params) - set(fields) - {"target"})
    if unknown:
        allowed = ", ".join(n for n in fields if n != "target") or "none"
        raise FaultError(f"{kind}: unknown parameter {unknown[0]!r} (parameters: {allowed})")
    values: dict[str, Any] = {}
    for name, value in params.items():
        values[name] = _coerce(kind, name, fields[name].type, value)
    try:
        fault: Fault = cls(target=target, **values)
    except TypeError as error:
        raise FaultError(f"{kind}: {error}") from None
    return fault


_CASTS: dict[str, Callable[[Any], Any]] = {"float": float, "int": int, "str": str}


def _coerce(kind: str, name: str, annotation: Any, value: Any) -> Any:
    """CLI values arrive as strings: turn ``"200"`` into 200 for an ``int`` field."""
    cast = _CASTS.get(str(annotation).replace(" | None", ""))
    if cast is None or value is None:
        return value
    try:
        return cast(value)
    except (TypeError, ValueError):
        raise FaultError(f"{kind}: {name} must be {annotation}, got {value!r}") from None


def check(condition: bool, kind: str, message: str) -> None:
    """Parameter validation in ``__post_init__``: one line naming the kind."""
    if not condition:
        raise FaultError(f"{kind}: {message}")
