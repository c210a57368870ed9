"""The registry of active faults: every injection has a deadline, and healing is
guaranteed — by a watcher thread at the deadline, by the owner on exit (normal or by a
signal), and, for what outlives a killed harness, by the next ``stack up`` reading the
persisted handles.

It also keeps the timeline (injected / healed, when, why) that the drill's report needs.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from gameday.faults.base import Fault, FaultContext, Handle
from gameday.faults.errors import FaultError

log = structlog.get_logger("gameday.faults")
MAX_DURATION_S = 3600.0
_TIMELINE_CAP = 10_000


@dataclass
class ActiveFault:
    id: str
    fault: Fault
    duration_s: float
    started_at: datetime
    deadline: float  # time.monotonic()
    handle: Handle = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        params = {k: v for k, v in dataclasses.asdict(self.fault).items() if k != "target"}  # type: ignore[call-overload]
        left = max(0.0, self.deadline - time.monotonic())
        return {"id": self.id, "kind": self.fault.kind, "target": self.fault.target,
                "params": params, "started_at": self.started_at.isoformat(),
                "duration_s": self.duration_s, "heals_in_s": round(left, 1),
                "handle": self.handle}  # fmt: skip


@dataclass(frozen=True)
class FaultEvent:
    at: datetime
    action: str  # injected | healed | heal_failed
    fault_id: str
    kind: str
    target: str
    reason: str = ""


class FaultRegistry:
    def __init__(
        self,
        ctx: FaultContext,
        *,
        persist_to: Path | None = None,
        max_duration_s: float = MAX_DURATION_S,
    ) -> None:
        self._ctx = ctx
        self._persist_to = persist_to
        self.max_duration_s = max_duration_s
        self._active: dict[str, ActiveFault] = {}
        self._lock = threading.RLock()
        self._budget_s = 0.0
        self.timeline: deque[FaultEvent] = deque(maxlen=_TIMELINE_CAP)
        self._closed = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="fault-watcher", daemon=True)
        self._watcher.start()

    # ------------------------------------------------------------------ public

    def inject(self, fault: Fault, duration_s: float) -> ActiveFault:
        if not 0 < duration_s <= self.max_duration_s:
            raise FaultError(f"duration must be between 0 and {self.max_duration_s:.0f} s")
        with self._lock:
            if self._closed.is_set():
                raise FaultError("the stack is shutting down")
            self._budget_s = duration_s
            entry = ActiveFault(uuid.uuid4().hex[:8], fault, duration_s, datetime.now(UTC),
                                time.monotonic() + duration_s)  # fmt: skip
            entry.handle = fault.inject(self._ctx)
            self._active[entry.id] = entry
            self._record("injected", entry)
            self._persist()
            return entry

    def heal(self, fault_id: str, reason: str = "requested") -> ActiveFault:
        with self._lock:
            entry = self._active.get(fault_id)
            if entry is None:
                raise FaultError(f"no active fault {fault_id!r}")
            self._heal(entry, reason)
            return entry

    def heal_all(self, reason: str = "requested") -> list[str]:
        """Heal everything; return the errors (one line each) of heals that failed."""
        with self._lock:
            errors = []
            for entry in list(self._active.values()):
                try:
                    self._heal(entry, reason)
                except Exception as error:  # one failure must not skip the rest
                    errors.append(f"{entry.fault.kind} on {entry.fault.target}: {error}")
            return errors

    def active(self) -> list[ActiveFault]:
        with self._lock:
            return list(self._active.values())

    def budget_s(self) -> float:
        """The duration of the injection in progress (helper processes stop then)."""
        return self._budget_s

    def close(self) -> list[str]:
        self._closed.set()
        errors = self.heal_all("exit")
        self._watcher.join(2)
        return errors

    # ------------------------------------------------------------------ inside

    def _heal(self, entry: ActiveFault, reason: str) -> None:
        try:
            entry.fault.heal(self._ctx, entry.handle)
        except Exception as error:
            self._record("heal_failed", entry, f"{reason}: {error}")
            log.error("heal failed", fault=entry.fault.kind, target=entry.fault.target,
                      error=str(error))  # fmt: skip
            raise
        self._active.pop(entry.id, None)
        self._record("healed", entry, reason)
        self._persist()

    def _watch(self) -> None:
        while not self._closed.wait(0.1):
            now = time.monotonic()
            for entry in self.active():
                if entry.deadline <= now and entry.id in self._active:
                    try:
                        self.heal(entry.id, "expired")
                    except Exception:  # logged in _heal; retried in a second
                        entry.deadline = now + 1.0

    def _record(self, action: str, entry: ActiveFault, reason: str = "") -> None:
        self.timeline.append(FaultEvent(datetime.now(UTC), action, entry.id, entry.fault.kind,
                                        entry.fault.target, reason))  # fmt: skip
        log.info(f"fault {action}", fault=entry.fault.kind, target=entry.fault.target,
                 id=entry.id, reason=reason)  # fmt: skip

    def _persist(self) -> None:
        if self._persist_to is None:
            return
        data = [entry.describe() for entry in self._active.values()]
        tmp = self._persist_to.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1, default=str))
        tmp.replace(self._persist_to)
