"""Cost of judging a drill's history: a million operations, read once, in bounded memory.

    .venv/bin/python bench/checkers.py [--quick] [--ops N] [--repeat R] [--keep PATH]

Writes a synthetic history of ``--ops`` operations (default 1,000,000) with a drill's mix:
availability reads, holds (some refused, some timed out), payments under idempotency keys
(a quarter of them retries of an earlier key, replayed with the same answer; transient 409s;
declines; 5xx), webhook deliveries with replayed event ids, logins. Completion times are a
Poisson stream at 600 operations per second, latencies log-normal per endpoint, every line
carrying the fields the drill writes (correlation id, scenario, phase...).

Then, each case in a fresh child process (this script with ``--child``), so that one case's
heap cannot flatter or burden the next:

(a) baseline: the standard library's ``json.loads`` of every line into a list;
(b) ``scan_history(path, stats=False)`` (the checkers' own streaming reader, collecting what
    the checkers read and nothing else) + ``deterministic_retries`` + ``no_lost_ack`` against
    a state holding every acknowledged write: what judging a history costs;
(s) the same with the request statistics (``stats=True``, latency percentiles and the
    per-second series, which the report may quote but no checker reads): the difference
    from (b) is the statistics' own cost;
(c) ``read_history`` (full ``Op`` objects) + ``check_history(ops, stats=False)`` + the same
    two checkers: the path of a drill that holds its operations in a list.

The child reports wall and CPU time of the case and how far its peak RSS (``ru_maxrss``)
rose above its RSS just before the case (imports done, state built). The best wall time of
``--repeat`` runs is shown (the machine is shared; CPU time shows what contention added),
and the largest peak. Targets for (b): at most 1.5 s and 100 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from gameday.checkers import (
    BookingRow,
    EventRow,
    FinalState,
    PaymentRow,
    Verdict,
    check_history,
    deterministic_retries,
    no_lost_ack,
    scan_history,
)
from gameday.history import Op, outcome_of, read_history

WALL_TARGET_S, PEAK_TARGET_MB = 1.5, 100.0
RATE_PER_S = 600.0
DAY = datetime(2026, 6, 1, tzinfo=UTC)
ENDPOINTS = {
    "availability": ("GET /resources/{id}/availability", -5.3, 0.5),
    "get_booking": ("GET /bookings/{id}", -5.5, 0.5),
    "hold": ("POST /bookings", -4.2, 0.6),
    "pay": ("POST /bookings/{id}/payment", -3.0, 0.7),
    "webhook": ("POST /webhooks/stripe", -4.5, 0.5),
    "login": ("POST /auth/login", -3.5, 0.4),
}


class _Mix:
    """The synthetic drill: which operation comes next and what it answered."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.bookings = 0
        self.keys: dict[str, dict[str, Any]] = {}
        self.recent: deque[str] = deque(maxlen=1000)
        self.paid: list[int] = []
        self.events: set[str] = set()

    def next(self) -> tuple[str, int, str, str, dict[str, Any] | None]:
        """(f, status, error, idempotency key, value)."""
        r = self.rng.random()
        if r < 0.40:
            return ("availability", 503, "overloaded", "", None) if r < 0.004 else (
                "availability", 200, "", "", None)  # fmt: skip
        if r < 0.48:
            seen = {"booking_id": self.rng.randint(1, 1 + self.bookings), "status": "held"}
            return "get_booking", 200, "", "", seen
        if r < 0.66:
            return self._hold()
        if r < 0.88:
            return self._pay()
        if r < 0.96:
            event = f"evt_{self.rng.randint(1, 20_000):024d}"
            status = 200 if self.rng.random() < 0.95 else 400
            if status == 200:
                self.events.add(event)
            return "webhook", status, "" if status == 200 else "invalid_signature", "", {
                "event_id": event, "event_type": "payment_intent.succeeded"}  # fmt: skip
        return "login", 200, "", "", {"expires_in": 900}

    def _hold(self) -> tuple[str, int, str, str, dict[str, Any] | None]:
        asked = {"resource_id": self.rng.randint(1, 200), "starts_at": "2026-06-01T10:00:00+00:00",
                 "ends_at": "2026-06-01T11:00:00+00:00"}  # fmt: skip
        r = self.rng.random()
        if r < 0.70:
            self.bookings += 1
            return "hold", 201, "", "", {**asked, "booking_id": self.bookings, "status": "held"}
        if r < 0.95:
            return "hold", 409, "slot_taken", "", asked
        return "hold", 0, "ReadTimeout", "", asked

    def _pay(self) -> tuple[str, int, str, str, dict[str, Any] | None]:
        rng = self.rng
        if self.recent and rng.random() < 0.25:  # a retry: the stored answer again
            key = rng.choice(self.recent)
            answer = self.keys[key]
            return "pay", answer["http"], answer["error"], key, answer["value"]
        key, booking = f"{rng.getrandbits(128):032x}", rng.randint(1, 1 + self.bookings)
        r = rng.random()
        value: dict[str, Any] = {"booking_id": booking, "digest": f"{rng.getrandbits(64):016x}"}
        if r < 0.03:
            return "pay", 409, "payment_in_progress", key, value
        if r < 0.05:
            return "pay", 503, "payment_provider_unavailable", key, value
        http, error, status = (200, "", "succeeded") if r < 0.90 else (
            (402, "card_declined", "") if r < 0.98 else (202, "", "processing"))  # fmt: skip
        if status:
            value |= {"payment_id": booking, "payment_intent": f"pi_{key[:24]}",
                      "status": status, "booking_status": "confirmed" if status == "succeeded"
                      else "held"}  # fmt: skip
        if status == "succeeded":
            self.paid.append(booking)
        if len(self.recent) == self.recent.maxlen:
            self.keys.pop(self.recent[0], None)  # about to fall out of the retry window
        self.keys[key] = {"http": http, "error": error, "value": value}
        self.recent.append(key)
        return "pay", http, error, key, value


def generate(path: Path, ops: int, seed: int = 1) -> dict[str, Any]:
    """The history file, and the state that holds every acknowledged write."""
    mix, rng, encoder = _Mix(seed), random.Random(seed + 1), msgspec.json.Encoder()
    buffer, t1 = bytearray(), 0.0
    with open(path, "wb") as file:
        for index in range(ops):
            f, status, error, key, value = mix.next()
            endpoint, mu, sigma = ENDPOINTS[f]
            t1 += rng.expovariate(RATE_PER_S)
            latency = 5.0 if status == 0 else rng.lognormvariate(mu, sigma)
            kind = outcome_of(status)
            op = Op(index=index, type=kind, f=f, process=f"c{index % 64}", endpoint=endpoint,
                    t0=max(0.0, t1 - latency), t1=t1, status=status, target="ingress",
                    scenario="payment-double-click", phase="inject",
                    correlation_id=f"{rng.getrandbits(128):032x}", idempotency_key=key,
                    error=error, value=value)  # fmt: skip
            encoder.encode_into(op, buffer, len(buffer))
            buffer.extend(b"\n")
            if len(buffer) > 1 << 20:
                file.write(buffer)
                buffer.clear()
        file.write(buffer)
    return {"bookings": mix.bookings, "payments": sorted(set(mix.paid)),
            "events": sorted(mix.events)}  # fmt: skip


def _state(sidecar: dict[str, Any]) -> FinalState:
    return FinalState(
        bookings=[BookingRow(i, 1, 1, DAY, DAY, "held") for i in range(1, sidecar["bookings"] + 1)],
        payments=[PaymentRow(i, i, "succeeded", f"pi_{i}", 5000) for i in sidecar["payments"]],
        events=[EventRow(e, "payment_intent.succeeded", "processed") for e in sidecar["events"]],
    )


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def child(case: str, path: Path, sidecar: Path) -> None:
    """One case, measured from inside a fresh process; prints one JSON line."""
    state = _state(json.loads(sidecar.read_text()))
    before, cpu0, wall0 = _rss_mb(), time.process_time(), time.perf_counter()
    verdicts: dict[str, str] = {}
    if case == "a":
        with open(path, "rb") as file:
            parsed = [json.loads(line) for line in file]
        verdicts["lines"] = str(len(parsed))
    else:
        if case == "c":
            facts = check_history(read_history(path), stats=False)
        else:
            facts = scan_history(path, stats=case == "s")
        read_s = time.perf_counter() - wall0
        for result in (deterministic_retries(facts), no_lost_ack(facts, state)):
            verdicts[result.name] = result.verdict.value
        if facts.stats is not None:
            verdicts["p95_ms"] = f"{facts.stats.overall.p95 * 1000:.2f}"
        verdicts["checks_s"] = f"{time.perf_counter() - wall0 - read_s:.2f}"
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"wall": wall, "cpu": cpu, "growth_mb": peak - before, "peak_mb": peak,
                      "verdicts": verdicts}))  # fmt: skip


def _run_child(case: str, path: Path, sidecar: Path) -> dict[str, Any]:
    done = subprocess.run(  # noqa: S603 - our interpreter and our own script
        [sys.executable, __file__, "--child", case, str(path), str(sidecar)],
        capture_output=True, text=True, timeout=600, check=True,
    )  # fmt: skip
    found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def _calibrate() -> float:
    """How fast this interpreter is here, so figures from two machines can be compared."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(10_000_000):
            pass
        best = min(best, time.perf_counter() - started)
    return best


CASES = {
    "a": "(a) json.loads of every line into a list",
    "b": "(b) scan_history + deterministic_retries + no_lost_ack",
    "s": "(s) the same with request statistics (stats=True)",
    "c": "(c) read_history + check_history + the same checkers",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50,000 operations, one run each")
    parser.add_argument("--ops", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="write the history here and keep it")
    parser.add_argument("--child", nargs=3, metavar=("CASE", "HISTORY", "STATE"))
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), Path(args.child[2]))
        return
    ops, repeat = (50_000, 1) if args.quick else (args.ops, args.repeat)
    with tempfile.TemporaryDirectory(prefix="bench-checkers-") as scratch:
        path = args.keep or Path(scratch) / "history.jsonl"
        sidecar = Path(scratch) / "state.json"
        started = time.perf_counter()
        facts = generate(path, ops)
        sidecar.write_text(json.dumps(facts))
        size = path.stat().st_size / 2**20
        print(f"history: {ops:,} operations, {size:.0f} MB, {facts['bookings']:,} acknowledged "
              f"holds, {len(facts['payments']):,} paid bookings "
              f"(written in {time.perf_counter() - started:.1f} s)")  # fmt: skip
        print(f"this machine runs an empty Python loop of 10 million turns in {_calibrate():.2f} s")
        print(f"\n{'case':58s} {'wall s':>7s} {'cpu s':>7s} {'peak +MB':>9s}  verdicts")
        for case, title in CASES.items():
            runs = [_run_child(case, path, sidecar) for _ in range(repeat)]
            best = min(runs, key=lambda run: run["wall"])
            growth = max(run["growth_mb"] for run in runs)
            shown = ", ".join(f"{k}={v}" for k, v in best["verdicts"].items())
            print(f"{title:58s} {best['wall']:7.2f} {min(r['cpu'] for r in runs):7.2f} "
                  f"{growth:9.1f}  {shown}")  # fmt: skip
            if case == "b" and ops == 1_000_000:
                met = best["wall"] <= WALL_TARGET_S and growth <= PEAK_TARGET_MB
                print(f"{'':58s} target ≤ {WALL_TARGET_S:.1f} s and ≤ {PEAK_TARGET_MB:.0f} MB: "
                      f"{'met' if met else 'MISSED'}")  # fmt: skip
        assert all(v != Verdict.FAIL.value for v in best["verdicts"].values())


if __name__ == "__main__":
    main()
