"""Part 6.1 of the playbook: every launch threshold, measured from the drill.

Each row answers pass (within the launch threshold), warn (past it but short of the blocker
line: a weak area the risk model scores), fail (past the blocker line, or past the threshold
of a row whose every violation blocks) or unknown (the drill did not measure it). Unknown is
never rounded to pass: the risk model scores it as an unmeasured area.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from gameday.gate.journal import Journal, Scenario

RowVerdict = Literal["pass", "warn", "fail", "unknown"]

MTTR_OK_S, MTTR_BLOCK_S = 20 * 60.0, 30 * 60.0
MANDATORY_IDS = tuple(range(1, 9))
"""The playbook's eight mandatory scenarios (Part 3)."""


@dataclass(frozen=True)
class Row:
    id: str
    category: str
    threshold: str
    blocker_when: str
    measured: str
    value: float | None
    verdict: RowVerdict
    blocker: bool
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "category": self.category,
            "threshold": self.threshold,
            "blocker_when": self.blocker_when,
            "measured": self.measured,
            "value": self.value,
            "verdict": self.verdict,
            "blocker": self.blocker,
            "detail": self.detail,
        }


def _pct(x: float) -> str:
    return f"{100 * x:.2f} %"


def _graded(
    value: float | None, ok: Callable[[float], bool], block: Callable[[float], bool]
) -> RowVerdict:
    if value is None:
        return "unknown"
    if block(value):
        return "fail"
    return "pass" if ok(value) else "warn"


def _figure_sum(j: Journal, check: str, figure: str) -> tuple[int | None, list[str]]:
    """Sum of a checker's figure over the scenarios that ran it, with where it was seen."""
    total, seen, where = 0, False, []
    for s in j.scenarios:
        for c in s.checks:
            if c.name == check and isinstance(c.figures.get(figure), int | float):
                seen = True
                n = int(c.figures[figure])
                total += n
                if n:
                    where.append(f"scenario {s.id}: {n}")
    return (total if seen else None), where


def duplicate_charges(j: Journal) -> Row:
    n, where = _figure_sum(j, "no_duplicate_charge", "bookings_charged_twice")
    verdict: RowVerdict = "unknown" if n is None else ("pass" if n == 0 else "fail")
    return Row(
        "duplicate_charges",
        "Duplicate charges",
        "0",
        "any",
        "—" if n is None else str(n),
        n,
        verdict,
        verdict == "fail",
        "; ".join(where),
    )


def duplicate_bookings(j: Journal) -> Row:
    slots, where = _figure_sum(j, "no_double_booking", "duplicate_confirmed_slots")
    overlaps, where2 = _figure_sum(j, "no_double_booking", "confirmed_overlaps")
    n = slots if slots is not None else overlaps
    verdict: RowVerdict = "unknown" if n is None else ("pass" if n == 0 else "fail")
    return Row(
        "duplicate_bookings",
        "Duplicate confirmed bookings per slot",
        "0",
        "any",
        "—" if n is None else str(n),
        n,
        verdict,
        verdict == "fail",
        "; ".join(where or where2),
    )


def mandatory_pass_rate(j: Journal, mandatory: tuple[int, ...] = MANDATORY_IDS) -> Row:
    ran = {s.id: s.verdict for s in j.scenarios}
    passed = [i for i in mandatory if ran.get(i) == "pass"]
    missing = [i for i in mandatory if i not in ran]
    failed = [i for i in mandatory if ran.get(i) in ("fail", "unknown")]
    rate = len(passed) / len(mandatory)
    detail = "; ".join(
        part
        for part in (
            f"failed or inconclusive: {', '.join(map(str, failed))}" if failed else "",
            f"not run: {', '.join(map(str, missing))}" if missing else "",
        )
        if part
    )
    verdict: RowVerdict = "pass" if rate == 1.0 else "fail"
    return Row(
        "mandatory_pass_rate",
        "Scenario pass rate (mandatory 8)",
        "100 %",
        "< 100 %",
        f"{len(passed)}/{len(mandatory)} ({_pct(rate)})",
        rate,
        verdict,
        verdict == "fail",
        detail,
    )


def overall_pass_rate(j: Journal) -> Row:
    if not j.scenarios:
        return Row(
            "overall_pass_rate",
            "Scenario pass rate (overall, with optional)",
            "≥ 90 %",
            "< 90 %",
            "—",
            None,
            "unknown",
            False,
            "no scenario ran",
        )
    passed = sum(1 for s in j.scenarios if s.verdict == "pass")
    rate = passed / len(j.scenarios)
    verdict: RowVerdict = "pass" if rate >= 0.9 else "fail"
    return Row(
        "overall_pass_rate",
        "Scenario pass rate (overall, with optional)",
        "≥ 90 %",
        "< 90 %",
        f"{passed}/{len(j.scenarios)} ({_pct(rate)})",
        rate,
        verdict,
        verdict == "fail",
    )


def api_5xx_steady(j: Journal) -> Row:
    s = j.steady
    rate = s.error_rate if s is not None and s.requests else None
    verdict = _graded(rate, lambda v: v < 0.01, lambda v: v >= 0.02)
    detail = (
        f"{s.status_5xx} 5xx and {s.no_answer} unanswered of {s.requests} requests outside "
        f"{len(s.excluded_windows)} fault window(s)"
        if s is not None
        else "no steady-state figures"
    )
    return Row(
        "api_5xx_steady",
        "API 5xx during drill steady-state",
        "< 1 %",
        "≥ 2 % sustained",
        "—" if rate is None else _pct(rate),
        rate,
        verdict,
        verdict == "fail",
        detail,
    )


def p95_critical(j: Journal) -> Row:
    values = {
        k: v for k, v in (j.steady.critical_p95_s if j.steady else {}).items() if v is not None
    }
    worst = max(values.values()) if values else None
    verdict = _graded(worst, lambda v: v < 1.5, lambda v: v > 2.5)
    detail = ", ".join(f"{k} {1000 * v:.0f} ms" for k, v in sorted(values.items()))
    return Row(
        "p95_critical",
        "API p95 latency (critical endpoints)",
        "< 1500 ms",
        "> 2500 ms sustained",
        "—" if worst is None else f"{1000 * worst:.0f} ms",
        worst,
        verdict,
        verdict == "fail",
        detail,
    )


def webhook_success(j: Journal) -> Row:
    w = j.webhooks
    rate = w.success_rate if w is not None else None
    verdict = _graded(rate, lambda v: v >= 0.99, lambda v: v < 0.98)
    if w is None:
        detail = "the provider's events were not read"
    elif w.error:
        detail = w.error
    else:
        detail = f"{w.delivered} of {w.events} provider events acknowledged within {w.window_s:g} s"
    return Row(
        "webhook_success",
        "Webhook processing success",
        "≥ 99 % within 5 min window",
        "< 98 %",
        "—" if rate is None else _pct(rate),
        rate,
        verdict,
        verdict == "fail",
        detail,
    )


def db_pool(j: Journal) -> Row:
    p = j.db_pool
    steady, peak = (p.steady, p.peak) if p is not None else (None, None)
    if steady is None or peak is None:
        verdict: RowVerdict = "unknown"
    elif steady >= 0.9:
        verdict = "fail"
    else:
        verdict = "pass" if steady < 0.8 and peak < 0.9 else "warn"
    measured = (
        "—" if verdict == "unknown" else f"steady {_pct(steady or 0)}, peak {_pct(peak or 0)}"
    )
    detail = (p.error if p is not None else "") or ("" if p else "not measured")
    return Row(
        "db_pool",
        "DB connection utilization",
        "< 80 % steady, < 90 % peak",
        "≥ 90 % sustained",
        measured,
        steady,
        verdict,
        verdict == "fail",
        detail,
    )


def _of_kind(j: Journal, kind: str) -> list[Scenario]:
    return [s for s in j.scenarios if s.kind == kind]


def redis_survivability(j: Journal) -> Row:
    runs = _of_kind(j, "cache")
    if not runs:
        return Row(
            "redis_survivability",
            "Redis outage survivability",
            "no crash-loop, graceful degrade proven",
            "not proven",
            "—",
            None,
            "unknown",
            False,
            "the Redis scenario did not run",
        )
    restarts = sum(f.restarts or 0 for s in runs for f in s.faults)
    failed = [c.text for s in runs for c in s.criteria if c.verdict != "pass"]
    verdict: RowVerdict = "pass" if not failed and restarts == 0 and runs[0].faults else "fail"
    detail = "; ".join(failed) or f"{restarts} worker restart(s)"
    measured = "degraded gracefully" if verdict == "pass" else "not proven"
    return Row(
        "redis_survivability",
        "Redis outage survivability",
        "no crash-loop, graceful degrade proven",
        "not proven",
        measured,
        float(restarts),
        verdict,
        verdict == "fail",
        detail,
    )


def mttr(j: Journal) -> Row:
    """Per injected failure: from the injection until the service answered again after
    the heal (the outage's own length is the scenario's; the recovery is the service's)."""
    times, never = [], []
    for s in j.scenarios:
        for f in s.faults:
            if f.recovery_probe is None:
                continue  # nothing to recover from (e.g. expired tokens on the clients)
            if f.recovery_s is None:
                never.append(f"{s.id}: {f.kind} {f.target}")
            else:
                times.append((f.healed_t - f.injected_t + f.recovery_s, s.id, f))
    if not times and not never:
        return Row(
            "mttr",
            "Incident MTTR (critical injected failures)",
            "≤ 20 min",
            "> 30 min",
            "—",
            None,
            "unknown",
            False,
            "no failure was injected",
        )
    worst = max((t for t, _s, _f in times), default=None)
    if never:
        verdict: RowVerdict = "fail"
    else:
        verdict = _graded(worst, lambda v: v <= MTTR_OK_S, lambda v: v > MTTR_BLOCK_S)
    detail = ", ".join(
        f"{sid}: {f.kind} {f.target} {t:.1f} s (recovery {f.recovery_s:.2f} s)"
        for t, sid, f in times
    )
    if never:
        detail = f"never recovered: {', '.join(never)}; " + detail
    measured = "not recovered" if never else f"{worst:.1f} s"
    return Row(
        "mttr",
        "Incident MTTR (critical injected failures)",
        "≤ 20 min",
        "> 30 min",
        measured,
        worst,
        verdict,
        verdict == "fail",
        detail,
    )


ROWS: tuple[Callable[[Journal], Row], ...] = (
    duplicate_charges,
    duplicate_bookings,
    mandatory_pass_rate,
    overall_pass_rate,
    api_5xx_steady,
    p95_critical,
    webhook_success,
    db_pool,
    redis_survivability,
    mttr,
)


def evaluate(j: Journal) -> list[Row]:
    return [row(j) for row in ROWS]
