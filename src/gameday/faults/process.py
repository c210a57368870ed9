"""Process faults on the stack's own children: a worker or a dependency is killed,
frozen or restarted. Targets name parts: ``w1``, ``w2``, ``workers``, ``db``, ``redis``,
``provider``, ``smtp``. A part pointed at an existing server (not ours to kill) is refused.
"""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import dataclass
from typing import ClassVar

from gameday.faults.base import FaultContext, Handle, register
from gameday.faults.errors import FaultError


def _pids(ctx: FaultContext, target: str) -> dict[str, int]:
    found = {}
    for name in ctx.process_names(target):
        pid = ctx.pid_of(name)
        if pid is None:
            raise FaultError(f"{name} is not running as a process of this stack")
        found[name] = pid
    return found


@register
@dataclass(frozen=True)
class Kill:
    """SIGKILL, as the OOM killer or a node loss does; healing starts it again (what a
    supervisor would), on the same port."""

    kind: ClassVar[str] = "kill"
    target: str

    def inject(self, ctx: FaultContext) -> Handle:
        pids = _pids(ctx, self.target)
        for pid in pids.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return {"parts": sorted(pids), "pids": sorted(pids.values())}

    def heal(self, ctx: FaultContext, handle: Handle) -> None:
        for name in handle.get("parts", []):
            ctx.ensure_running(name)


@register
@dataclass(frozen=True)
class Pause:
    """SIGSTOP: the process holds its sockets but answers nothing (a GC pause, a VM
    steal); healing sends SIGCONT."""

    kind: ClassVar[str] = "pause"
    target: str

    def inject(self, ctx: FaultContext) -> Handle:
        pids = _pids(ctx, self.target)
        for pid in pids.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
        return {"pids": sorted(pids.values())}

    def heal(self, ctx: FaultContext, handle: Handle) -> None:
        for pid in handle.get("pids", []):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


@register
@dataclass(frozen=True)
class Restart:
    """A graceful stop and start (a deploy, a failover): the part is briefly gone."""

    kind: ClassVar[str] = "restart"
    target: str

    def inject(self, ctx: FaultContext) -> Handle:
        names = sorted(_pids(ctx, self.target))
        try:
            for name in names:
                ctx.restart(name)
        except BaseException:
            self.heal(ctx, {"parts": names})  # never leave a part stopped
            raise
        return {"parts": names}

    def heal(self, ctx: FaultContext, handle: Handle) -> None:
        for name in handle.get("parts", []):
            ctx.ensure_running(name)
