"""What the drill may do to the target beyond sending requests: inject and heal faults,
see its processes (restarts, memory), count connections through a proxy link, run its
reconciliation. The embedded stack provides all of it; an external target none, and each
hook then says so (the scenario step is "unknown", never passed by default).

All of it blocks (HTTP to the proxy, subprocesses): the engine calls these in threads.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import TYPE_CHECKING

from gameday.drill.context import ProbeError
from gameday.faults import Fault, FaultError
from gameday.faults.registry import ActiveFault, FaultRegistry
from gameday.stack.service import bookings_command

if TYPE_CHECKING:
    from gameday.stack.stack import Stack


class Hooks:
    def __init__(self, stack: Stack | None, out: Path) -> None:
        self.stack = stack
        self.out = out

    # ------------------------------------------------------------------ faults

    def registry(self) -> FaultRegistry:
        if self.stack is None or self.stack.faults is None:
            raise ProbeError("faults need the embedded stack (this target has no fault hooks)")
        return self.stack.faults

    def inject(self, fault: Fault, duration_s: float) -> ActiveFault:
        return self.registry().inject(fault, duration_s)

    def heal(self, fault_id: str, attempts: int = 3) -> str | None:
        """None once the fault is gone; else why it could not be healed (after a few tries;
        the registry keeps retrying at its deadline)."""
        registry = self.registry()
        error = ""
        for attempt in range(attempts):
            if all(f.id != fault_id for f in registry.active()):
                return None  # healed (by us, or at its deadline)
            try:
                registry.heal(fault_id, "scenario step over")
            except FaultError as failed:
                error = str(failed)
            except Exception as failed:  # a heal that fails for another reason: retried
                error = f"{type(failed).__name__}: {failed}"
            if attempt + 1 < attempts:
                time.sleep(0.5)
        return None if all(f.id != fault_id for f in registry.active()) else error

    def heal_all(self, reason: str) -> list[str]:
        if self.stack is None or self.stack.faults is None:
            return []
        return self.stack.faults.heal_all(reason)

    def overdue(self, now: float, grace_s: float = 5.0) -> list[ActiveFault]:
        if self.stack is None or self.stack.faults is None:
            return []
        return [f for f in self.stack.faults.active() if f.deadline < now - grace_s]

    # ------------------------------------------------------------------ processes

    def pids(self) -> dict[str, int]:
        if self.stack is None:
            return {}
        return {n: w.pid for n, w in self.stack.workers.items() if w.running() and w.pid}

    def rss(self) -> dict[str, int]:
        """Resident memory of each worker, bytes (from /proc: the service's own metrics
        may not export it)."""
        found = {}
        for name, pid in self.pids().items():
            with contextlib.suppress(OSError, ValueError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        found[name] = int(line.split()[1]) * 1024
        return found

    # ------------------------------------------------------------------ the proxy

    def provider_links(self, target: str) -> list[str]:
        """The proxy links to the payment provider a fault target covers (amplification)."""
        if self.stack is None:
            return []
        links = self.stack.links
        if target in links:
            return [target] if target.endswith(".provider") else []
        covers = target in ("all", "provider")
        return [n for n in links
                if n.endswith(".provider") and (covers or n.startswith(f"{target}."))]  # fmt: skip

    def connections(self, links: list[str]) -> int | None:
        """Connections ever opened through ``links``: a provider call that cannot reuse a
        connection opens one, so retries show up here."""
        if not links or self.stack is None:
            return None
        try:
            client = self.stack.proxy_client
            return sum(int(client.link(n)["stats"]["connections_total"]) for n in links)
        except Exception:
            return None

    # ------------------------------------------------------------------ repair

    def reconcile(self) -> tuple[bool | None, str]:
        """The service's own reconciliation (refund duplicates, settle stragglers)."""
        if self.stack is None:
            return None, "not available on an external target: run your reconciliation"
        env = {"BOOKINGS_DATABASE_URL": self.stack.database_url,
               "BOOKINGS_STRIPE_API_BASE": self.stack.provider_url,
               **self.stack.secrets.env()}  # fmt: skip
        logfile = self.out / "reconcile.log"
        try:
            bookings_command(["reconcile", "--apply"], env=env, log=logfile)
        except Exception as error:
            return False, str(error).splitlines()[0][:300]
        tail = logfile.read_text().strip().splitlines()[-1:] if logfile.exists() else []
        return True, tail[0][:300] if tail else "reconciled"
