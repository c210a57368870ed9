"""The drill: pre-flight, a baseline, then each scenario — set up, load, inject, observe,
heal, verify recovery, check invariants, judge, roll back on failure — with a journal
rewritten after every step.

Everything runs on one asyncio loop (the load, the probes, the live view, the watchdog);
blocking work (fault injection, reading the database and the provider, Prometheus
queries, the reconcile command) goes to threads. Safety: every fault is healed by the
registry at its deadline anyway; the watchdog aborts the drill when the target stops
answering or a fault outlives its deadline, and an abort or Ctrl-C heals everything
before anything else happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from gameday.alerts import aligned_now
from gameday.checkers.readers import read_state
from gameday.checkers.result import CheckResult
from gameday.drill import probes as probe_lib
from gameday.drill.alerting import alert_criteria, annotate, missing
from gameday.drill.background import BackgroundLoad, LoadProfile
from gameday.drill.checks import invariant_criteria, run_checks, scoped
from gameday.drill.closing import fault_spans, summarise, wall_clock, webhook_deliveries
from gameday.drill.context import DrillContext, ProbeError
from gameday.drill.criteria import judge
from gameday.drill.hooks import Hooks
from gameday.drill.injection import FaultStep, ScenarioRun
from gameday.drill.journal import HISTORY, Journal
from gameday.drill.measure import Window, windows
from gameday.drill.metrics import alert_events, pool_figures, prometheus_url, snapshot
from gameday.drill.preflight import blocking_failures, run_preflight
from gameday.drill.scenario import Duration, Pace, Scenario
from gameday.drill.shop import Shop
from gameday.drill.target import Target
from gameday.faults import FaultError
from gameday.history import HistoryWriter, Op, read_history
from gameday.load.client import HttpClient
from gameday.load.driver import Driver
from gameday.verdict import Verdict

if TYPE_CHECKING:
    from gameday.stack.stack import Stack

log = structlog.get_logger("gameday.drill")
Status = Callable[[dict[str, Any]], None]

BASELINE = Duration(4.0, 60.0)
RECOVERY_LIMIT = Duration(20.0, 600.0)
ALERT_GRACE = Duration(12.0, 120.0)
"""How long after healing an expected alert may still arrive (Alertmanager is asynchronous)."""
STOP_UNREACHABLE = Duration(30.0, 300.0)
WEBHOOK_WINDOW = Duration(30.0, 300.0)
"""The playbook's "webhook processing success within 5 min", scaled like the retries."""
STUCK_AFTER = Duration(5.0, 60.0)
"""A payment still pending this long after its last change is stuck, not in flight."""
_CONNECTIONS = 2 * 64 + 128
"""Background purchases and reads (64 in flight each) plus a burst of up to 128."""
BASELINE_LOAD = LoadProfile(rate=4.0, browse_rate=8.0)


class DrillAborted(RuntimeError):  # noqa: N818 - named for what happened
    pass


@dataclass
class DrillOptions:
    pace: Pace = "fast"
    seed: int = 1
    scenarios: tuple[int, ...] = ()
    out: Path = Path("gameday-report")
    max_minutes: float = 30.0


class Drill:
    def __init__(
        self,
        target: Target,
        options: DrillOptions,
        *,
        stack: Stack | None = None,
        status: Status | None = None,
    ) -> None:
        self.target, self.options, self.stack = target, options, stack
        self.pace = options.pace
        self.status = status or (lambda _s: None)
        options.out.mkdir(parents=True, exist_ok=True)
        self.journal = Journal(options.out)
        history_path = options.out / HISTORY
        history_path.unlink(missing_ok=True)
        self.history = HistoryWriter(history_path)
        self.driver = Driver(self.history, timeout_s=10.0)
        self.view: dict[str, Any] = {
            "phase": "starting",
            "scenario": "",
            "faults": [],
            "alerts": [],
            "results": [],
        }
        self._abort: str | None = None
        self.hooks = Hooks(stack, options.out)
        self._fired: dict[str, int] = {}
        self._mark = 0
        """Where the current phase's operations start in the history file."""
        """Alerts firing now, by the scenario that raised them."""
        self._fault_step = FaultStep(
            self.hooks, self.history, self.journal, self.view, self.pace,
            tuple(target.instances), self._probe, self._snapshot,
            lambda: self._ops(self.driver.scenario),
        )  # fmt: skip

    # ================================================================== running

    async def run(self, scenarios: list[Scenario]) -> dict[str, Any]:
        # Room for the background flows and the largest burst at once: a request waiting for
        # one of the harness's own connections would be counted against the target.
        clients = {"ingress": HttpClient(self.target.base_url, connections=_CONNECTIONS)}
        for name, url in self.target.instances.items():
            clients[name] = HttpClient(url, connections=_CONNECTIONS)
        watch = HttpClient(self.target.base_url, connections=2)
        shop = Shop(self.target, self.driver, clients)
        ctx = DrillContext(
            self.target,
            shop,
            self.driver,
            self.history,
            pace=self.pace,
            seed=self.options.seed,
            stack=self.stack,
        )
        self.journal.data["options"] = {
            "pace": self.pace,
            "seed": self.options.seed,
            "scenarios": [s.id for s in scenarios],
        }
        self.journal.data["target"] = self.target.describe()
        self.journal.save()
        watchdog = asyncio.create_task(self._watchdog(watch))
        viewer = asyncio.create_task(self._refresh_view())
        try:
            main = asyncio.create_task(self._main(ctx, scenarios))
            done, _ = await asyncio.wait({main, watchdog}, return_when=asyncio.FIRST_COMPLETED)
            if main not in done:
                main.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await main
                raise DrillAborted(self._abort or "stopped by the watchdog")
            main.result()
            self.journal.finish("complete")
        except (DrillAborted, asyncio.CancelledError, KeyboardInterrupt) as stop:
            reason = str(stop) or "interrupted"
            await self._heal_everything(f"aborted: {reason}")
            self.journal.finish("aborted", reason)
            raise
        except Exception as error:  # a harness bug: heal first, keep the evidence, then say so
            log.exception("the drill failed")
            reason = f"the harness failed: {type(error).__name__}: {error}"
            await self._heal_everything(reason)
            self.journal.finish("aborted", reason)
            raise DrillAborted(reason) from error
        finally:
            watchdog.cancel()
            viewer.cancel()
            for client in (*clients.values(), watch):
                with contextlib.suppress(Exception):
                    await client.close()
            self.history.close()
            self.journal.data["history"].update(
                {"requests": self.history.count, "endpoints": self.driver.summary()}
            )
            self.journal.save()
        return self.journal.data

    async def _main(self, ctx: DrillContext, scenarios: list[Scenario]) -> None:
        await self._preflight(ctx)
        await self._baseline(ctx)
        for scenario in scenarios:
            result = await self._scenario(ctx, scenario)
            self.journal.data["scenarios"].append(result)
            self.view["results"].append((scenario.id, scenario.title, result["verdict"]))
            self.journal.save()
        await self._closing(ctx)
        self._summarise()

    # ================================================================== phases

    def _phase(self, name: str, scenario: str = "") -> None:
        self.view["phase"], self.view["scenario"] = name, scenario
        self.journal.event(self.history.now(), "phase", name, scenario=scenario or None)
        self.journal.save()
        self.status(self.view)

    async def _preflight(self, ctx: DrillContext) -> None:
        self._phase("pre-flight")
        stop = (
            f"abort if the target is unreachable {STOP_UNREACHABLE.at(self.pace):g} s, a "
            f"fault outlives its deadline, or the drill passes {self.options.max_minutes:g} min"
        )
        checks = await run_preflight(ctx, self.options.out, stop,
                                     prometheus_url(self.target, self.stack))  # fmt: skip
        self.journal.data["preflight"] = checks
        self.journal.save()
        failed = blocking_failures(checks)
        if failed:
            raise DrillAborted("pre-flight failed: " + "; ".join(failed))

    async def _baseline(self, ctx: DrillContext) -> None:
        self._phase("baseline")
        self._mark = self.history.mark()  # before the name changes: none of its ops precede it
        self.driver.scenario, self.driver.phase = "baseline", "steady"
        start = self.history.now()
        before = await self._snapshot()
        load = BackgroundLoad(ctx, BASELINE_LOAD, self._horizon_s).start()
        await asyncio.sleep(BASELINE.at(self.pace))
        await load.stop()
        self.history.flush()
        ops = await self._ops_of("baseline")
        figures = windows(ops, {"all": Window(start, math.inf)})["all"]
        self.journal.data["baseline"] = {"figures": figures, "metrics": before}
        self.journal.save()

    # ================================================================== a scenario

    async def _scenario(self, ctx: DrillContext, scenario: Scenario) -> dict[str, Any]:
        sid = str(scenario.id)
        self._phase("scenario", f"{scenario.id}. {scenario.title}")
        self._mark = self.history.mark()  # before the name changes: none of its ops precede it
        self.driver.scenario, self.driver.phase = sid, "setup"
        ctx.new_scenario()
        run = ScenarioRun(scenario, self.history.now())
        alerts_since = aligned_now()
        snapshots = {"before": await self._snapshot()}
        await self._act(ctx, run, snapshots)
        self.driver.phase = "quiet"
        await asyncio.sleep(scenario.quiet.at(self.pace))
        snapshots["after"] = await self._snapshot()
        checks = await self._check(ctx, run)
        alerts = await self._alerts(run, scenario, alerts_since)
        judged = [
            judge(c, run.measures) for c in (*scenario.criteria, *invariant_criteria(scenario))
        ]
        injected = run.first_injection is not None
        judged += alert_criteria(scenario.expect_alerts, alerts, injected=injected)
        verdict = Verdict.worst([j.verdict for j in judged])
        if run.errors and verdict is Verdict.PASS:
            verdict = Verdict.UNKNOWN
        rollback = await self._rollback(scenario) if verdict is not Verdict.PASS else []
        self.journal.event(self.history.now(), "verdict", verdict.value, scenario=scenario.id)
        return {
            "id": scenario.id, "slug": scenario.slug, "title": scenario.title,
            "playbook": scenario.playbook, "kind": scenario.kind, "mandatory": scenario.mandatory,
            "verdict": verdict.value, "started_t": run.started, "ended_t": self.history.now(),
            "criteria": [j.to_json() for j in judged], "checks": [c.to_json() for c in checks],
            "faults": run.faults, "alerts": alerts, "measures": run.measures,
            "metrics": snapshots, "errors": run.errors, "rollback": rollback,
            "bookings": sorted(ctx.bookings)[:500],
        }  # fmt: skip

    async def _act(self, ctx: DrillContext, run: ScenarioRun, snapshots: dict[str, Any]) -> None:
        """The scenario's steps in order, under its background load."""
        spec = run.scenario.load
        load = BackgroundLoad(ctx, LoadProfile(spec.rate, spec.browse_rate, spec.targets),
                              self._horizon_s).start()  # fmt: skip
        try:
            for step in run.scenario.steps:
                self.driver.phase = step.label
                if step.probe:
                    await self._probe(ctx, run, step.label, step.probe, step.params)
                    continue
                try:
                    snapshots["during"] = await self._fault_step(ctx, run, step)
                except (ProbeError, FaultError) as error:
                    self._step_error(run, step.label, str(error))
                except Exception as error:  # a bug in a step: recorded, the drill goes on
                    log.exception("fault step failed", step=step.label)
                    self._step_error(run, step.label, f"crashed: {type(error).__name__}: {error}")
        finally:
            await load.stop()

    async def _check(self, ctx: DrillContext, run: ScenarioRun) -> list[CheckResult]:
        """The scenario's figures from its own requests, then its invariant checkers over
        those requests and the final state of the bookings it created."""
        self.history.flush()
        ops = await self._ops_of(str(run.scenario.id))
        spans = {"all": Window(run.started, math.inf)}
        run.measures.update({f"history.{k}": v for k, v in windows(ops, spans)["all"].items()})
        target = self.target
        state = await read_state(target.database_url or None, target.provider_url or None,
                                 target.provider_key)  # fmt: skip
        checks = run_checks(run.scenario.checks, ops, scoped(state, ctx.bookings, ctx.requested),
                            STUCK_AFTER.at(self.pace))  # fmt: skip
        for check in checks:
            run.measures[f"checks.{check.name}"] = check.verdict.value
            for figure, value in check.figures.items():
                run.measures[f"checks.{check.name}.{figure}"] = value
        return checks

    def _step_error(self, run: ScenarioRun, label: str, error: str) -> None:
        run.errors.append(f"{label}: {error}")
        self.journal.event(self.history.now(), "step_error", label, error=error)

    async def _probe(
        self, ctx: DrillContext, run: ScenarioRun, label: str, name: str, params: Any
    ) -> bool:
        try:
            figures = await probe_lib.PROBES[name](ctx, **dict(params))
        except ProbeError as error:
            self._step_error(run, label, str(error))
            return False
        except Exception as error:  # a bug in a probe: its figures are missing, not passed
            log.exception("probe failed", probe=name)
            self._step_error(run, label, f"crashed: {type(error).__name__}: {error}")
            return False
        run.measures.update({f"{label}.{k}": v for k, v in figures.items()})
        return True

    async def _closing(self, ctx: DrillContext) -> None:
        """The drill-wide figures the gate and the report read (see ``closing``)."""
        self._phase("closing")
        self.driver.scenario, self.driver.phase = "closing", "closing"
        self.history.flush()
        spans = fault_spans(self.journal.data["scenarios"], RECOVERY_LIMIT.at(self.pace))
        now_t = self.history.now()
        wall = wall_clock(now_t, aligned_now())
        path = self.history.path
        found = await asyncio.to_thread(lambda: summarise(read_history(path), spans, now_t))
        self.journal.data.update(found)
        if self.target.provider_url:
            self.journal.data["webhooks"] = await webhook_deliveries(
                ctx.provider_get, wall(0).timestamp() - 1, WEBHOOK_WINDOW.at(self.pace)
            )
        self.journal.data["db_pool"] = await asyncio.to_thread(
            pool_figures, self.target, self.stack, wall, now_t, spans
        )
        self.journal.save()

    # ================================================================== helpers

    @property
    def _horizon_s(self) -> float:
        """Background load never outlives the drill's own time limit."""
        return self.options.max_minutes * 60

    async def _ops_of(self, scenario: str) -> list[Op]:
        """Off the event loop: the file is re-read while load runs."""
        return await asyncio.to_thread(lambda: list(self._ops(scenario)))

    def _ops(self, scenario: str) -> Iterator[Op]:
        ops = read_history(self.history.path, start=self._mark)
        return (op for op in ops if op.scenario == scenario)

    async def _heal_everything(self, reason: str) -> None:
        errors = await asyncio.to_thread(self.hooks.heal_all, reason)
        self.journal.event(self.history.now(), "heal_all", reason, errors=errors)

    async def _snapshot(self) -> dict[str, Any]:
        return await asyncio.to_thread(snapshot, self.target, self.stack)

    async def _alerts(
        self, run: ScenarioRun, scenario: Scenario, since: datetime
    ) -> list[dict[str, Any]]:
        """The notifications since the scenario began, waiting (bounded) for expected ones."""
        deadline = time.monotonic() + ALERT_GRACE.at(self.pace)
        while True:
            events = await asyncio.to_thread(alert_events, self.target, self.stack, since)
            wanted = missing(events, scenario.expect_alerts)
            if not wanted or run.first_injection is None or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        annotate(events, scenario.expect_alerts, run.first_injection_at, self._fired)
        for event in events:
            if event["status"] == "firing":
                self._fired.setdefault(event["name"], scenario.id)
            else:
                self._fired.pop(event["name"], None)
            self.journal.data["alerts"].append({**event, "scenario": scenario.id})
            self.journal.event(self.history.now(), "alert", event["name"],
                               status=event["status"], scenario=scenario.id)  # fmt: skip
        return events

    async def _rollback(self, scenario: Scenario) -> list[dict[str, Any]]:
        self._phase("rollback", f"{scenario.id}. {scenario.title}")
        done = []
        for action in scenario.rollback:
            if action == "heal":
                errors = await asyncio.to_thread(self.hooks.heal_all, "rollback")
                done.append({"action": "heal", "ok": not errors, "detail": "; ".join(errors)})
            elif action == "reconcile":
                ok, detail = await asyncio.to_thread(self.hooks.reconcile)
                done.append({"action": "reconcile", "ok": ok, "detail": detail})
            else:
                done.append({"action": action, "ok": None, "detail": "manual: for a human"})
            self.journal.event(self.history.now(), "rollback", action, ok=done[-1]["ok"])
        return done

    def _summarise(self) -> None:
        results = self.journal.data["scenarios"]
        counts = {v.value: sum(1 for r in results if r["verdict"] == v.value) for v in Verdict}
        self.journal.data["summary"] = {
            "scenarios": len(results),
            **counts,
            "verdict": Verdict.worst([Verdict(r["verdict"]) for r in results]).value,
        }

    # ================================================================== background

    async def _watchdog(self, ingress: HttpClient) -> None:
        """Returns (and so aborts the drill) when a stop condition holds."""
        limit = STOP_UNREACHABLE.at(self.pace)
        last_ok = time.monotonic()
        started = time.monotonic()
        while True:
            await asyncio.sleep(1.0)
            with contextlib.suppress(Exception):
                answer = await ingress.request("GET", self.target.paths.live, timeout_s=2)
                if answer.status < 500:
                    last_ok = time.monotonic()
            if time.monotonic() - last_ok > limit:
                self._abort = f"the target did not answer for {limit:g} s"
                return
            if time.monotonic() - started > self.options.max_minutes * 60:
                self._abort = f"the drill ran past its {self.options.max_minutes:g} min limit"
                return
            overdue = await asyncio.to_thread(self.hooks.overdue, time.monotonic())
            if overdue:
                self._abort = f"fault {overdue[0].fault.kind} outlived its deadline"
                return

    async def _refresh_view(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            window = self.driver.window(5.0)
            self.view["rate"], self.view["error_rate"] = window.requests_per_s, window.error_rate
            self.view["p95_ms"] = window.p95_ms
            if self.stack is not None and self.stack.monitoring is not None:
                self.view["alerts"] = sorted(self.stack.monitoring.receiver.firing())
            self.status(self.view)
