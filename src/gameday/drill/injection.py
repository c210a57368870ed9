"""One fault step of a scenario: inject, observe (probes and a metric snapshot while it
is active), heal, measure recovery, and the figures of the fault window — restarts, memory
growth, requests in flight during it (per instance too), provider connections per payment.

Healing is in a ``finally``: whatever happens while the fault is active (a probe error,
Ctrl-C, the watchdog), the fault is healed before anything else; the registry would heal
it at its deadline anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gameday.alerts import aligned_now
from gameday.drill import probes as probe_lib
from gameday.drill.context import DrillContext, ProbeError
from gameday.drill.hooks import Hooks
from gameday.drill.journal import Journal
from gameday.drill.measure import Window, windows
from gameday.drill.scenario import Duration, Pace, Scenario, Step
from gameday.faults import build
from gameday.history import HistoryWriter, Op

RECOVERY_LIMIT = Duration(20.0, 600.0)
INJECTION_MARGIN_S = 30.0
SNAPSHOT_LEAD_S = 0.5
"""The "during" snapshot is taken this long before the heal (a query takes some time)."""
"""The registry's own deadline is this much past the step's: it heals if the drill cannot."""


@dataclass
class ScenarioRun:
    """A scenario in progress: what it measured, injected and could not do."""

    scenario: Scenario
    started: float
    measures: dict[str, Any] = field(default_factory=dict)
    faults: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    first_injection: float | None = None
    first_injection_at: datetime | None = None


RunProbe = Callable[[DrillContext, ScenarioRun, str, str, Any], Awaitable[bool]]


@dataclass
class FaultStep:
    hooks: Hooks
    history: HistoryWriter
    journal: Journal
    view: dict[str, Any]
    pace: Pace
    instances: tuple[str, ...]
    run_probe: RunProbe
    snapshot: Callable[[], Awaitable[dict[str, Any]]]
    ops: Callable[[], Iterator[Op]]

    async def __call__(self, ctx: DrillContext, run: ScenarioRun, step: Step) -> dict[str, Any]:
        """Returns the metric snapshot taken while the fault was active."""
        duration = step.duration.at(self.pace) if step.duration else 1.0
        fault = build(step.fault, step.target, step.params)
        hooks = self.hooks
        pids, rss = hooks.pids(), hooks.rss()
        provider_links = hooks.provider_links(step.target)
        connections = await asyncio.to_thread(hooks.connections, provider_links)
        entry = await asyncio.to_thread(hooks.inject, fault, duration + INJECTION_MARGIN_S)
        t_inject = self.history.now()
        during: dict[str, Any] = {}
        opened: int | None = None
        try:  # from the moment it is injected: nothing may skip the heal
            if run.first_injection is None:
                run.first_injection, run.first_injection_at = t_inject, aligned_now()
            self.view["faults"] = [f"{step.fault} → {step.target}"]
            self._event(t_inject, "inject", step, entry.id, run)
            during = await self._observe(ctx, run, step, duration, t_inject)
        finally:
            healed = await asyncio.to_thread(hooks.heal, entry.id)
            t_heal = self.history.now()
            opened = await asyncio.to_thread(hooks.connections, provider_links)
            self.view["faults"] = []
            self._event(t_heal, "heal", step, entry.id, run)
        if healed is not None:
            # Recovery measured against a fault still active would be a lie.
            raise ProbeError(f"{step.fault} on {step.target} could not be healed: {healed}")
        recovery = await self._recover(ctx, step, t_heal) if step.recover else None
        after = hooks.pids()
        restarts = sum(1 for name, pid in pids.items() if after.get(name) != pid)
        grown = hooks.rss()
        growth = [grown[n] - rss[n] for n in rss if n in grown]
        label = step.label
        self.history.flush()
        ops = await asyncio.to_thread(lambda: list(self.ops()))
        run.measures.update(self._window_figures(ops, label, t_inject, t_heal))
        run.measures[f"{label}.restarts"] = restarts if pids else None
        run.measures[f"{label}.rss_growth_mb"] = max(growth) / 2**20 if growth else None
        run.measures[f"{label}.recovery_s"] = recovery
        if provider_links:
            run.measures[f"{label}.amplification"] = self._amplification(
                ops, provider_links, connections, opened, start=t_inject, end=t_heal
            )
        run.faults.append({"label": label, "kind": step.fault, "target": step.target,
                           "params": dict(step.params), "injected_t": t_inject,
                           "healed_t": t_heal, "recovery_s": recovery,
                           "recovery_probe": step.recover or None,
                           "restarts": restarts, "metrics_during": during})  # fmt: skip
        return during

    async def _observe(
        self, ctx: DrillContext, run: ScenarioRun, step: Step, duration: float, t_inject: float
    ) -> dict[str, Any]:
        settle = step.settle.at(self.pace) if step.settle else min(1.0, duration / 3)
        await asyncio.sleep(settle)
        for name in step.during:
            await self.run_probe(ctx, run, f"{step.label}.{name}", name, {})
        # The "during" snapshot is taken at the end of the window, when the monitoring's
        # rate windows hold the fault rather than the calm before it.
        left = duration - (self.history.now() - t_inject) - SNAPSHOT_LEAD_S
        if left > 0:
            await asyncio.sleep(left)
        return await self.snapshot()

    async def _recover(self, ctx: DrillContext, step: Step, t_heal: float) -> float | None:
        """Seconds from healing to the first success of the recovery probe (None: never),
        on the faulted instance itself when the fault hit one: through the ingress, a
        healthy sibling would answer and hide an instance that never came back."""
        limit = RECOVERY_LIMIT.at(self.pace)
        instance = step.target.split(".", 1)[0]
        where = instance if instance in self.instances else "ingress"
        while self.history.now() - t_heal < limit:
            with contextlib.suppress(ProbeError):
                figures = await probe_lib.PROBES[step.recover](ctx, where=where)
                if figures.get("ok"):
                    return round(self.history.now() - t_heal, 3)
            await asyncio.sleep(0.2)
        return None

    def _window_figures(
        self, ops: list[Op], label: str, t_inject: float, t_heal: float
    ) -> dict[str, Any]:
        spans = {"during": Window(t_inject, t_heal)}
        for name in self.instances:
            spans[f"during.{name}"] = Window(t_inject, t_heal, frozenset({name}))
        return {f"{label}.{span}.{k}": v
                for span, values in windows(ops, spans).items()
                for k, v in values.items()}  # fmt: skip

    def _amplification(
        self, ops: list[Op], links: list[str], before: int | None, after: int | None, *,
        start: float, end: float,
    ) -> float | None:  # fmt: skip
        """Provider connections opened through the faulted links per payment the drill sent
        to those instances while the fault was active: how far retries multiply calls."""
        instances = frozenset(link.split(".", 1)[0] for link in links)
        span = {"pays": Window(start, end, instances, only_f="pay")}
        pays = windows(ops, span)["pays"]["requests"]
        if not pays or before is None or after is None:
            return None
        return (after - before) / pays

    def _event(self, at: float, kind: str, step: Step, fault_id: str, run: ScenarioRun) -> None:
        self.journal.event(at, kind, step.fault, target=step.target, fault_id=fault_id,
                           scenario=run.scenario.id)  # fmt: skip
        self.journal.save()  # an injection is evidence the moment it happens
