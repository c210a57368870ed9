"""The one pass over the history: request statistics and the facts the checkers need."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import pytest

from gameday.checkers import HistoryFacts, RequestStats, check_history, scan_history
from gameday.history import HistoryWriter, Op, OpType, read_history
from gameday.history.store import ReadStats


def make_op(index: int, f: str, status: int, t0: float, t1: float, **more: Any) -> Op:
    kind: OpType = "ok" if 200 <= status < 300 else "fail" if 400 <= status < 500 else "info"
    return Op(
        index=index,
        type=kind,
        f=f,
        process="c1",
        endpoint=f"POST /{f}",
        t0=t0,
        t1=t1,
        status=status,
        **more,
    )


def mixed(n: int, seed: int = 7) -> list[Op]:
    rng, ops, t = random.Random(seed), [], 0.0
    for i in range(n):
        t += rng.expovariate(200)
        latency = rng.lognormvariate(-5, 1)
        r = rng.random()
        if r < 0.4:
            ops.append(make_op(i, "availability", 200, t, t + latency))
        elif r < 0.6:
            ops.append(
                make_op(
                    i,
                    "hold",
                    rng.choice([201, 201, 409, 503]),
                    t,
                    t + latency,
                    value={"booking_id": i, "resource_id": 1, "status": "held"},
                )
            )
        elif r < 0.9:
            status = rng.choice([200, 200, 202, 402, 409])
            ops.append(
                make_op(
                    i,
                    "pay",
                    status,
                    t,
                    t + latency,
                    idempotency_key=f"k{i % 500}",
                    error="payment_in_progress" if status == 409 else "",
                    value={
                        "booking_id": i % 500,
                        "digest": f"d{i % 500}",
                        "payment_id": i % 500,
                        "status": "succeeded" if status == 200 else "processing",
                    },
                )
            )
        else:
            ops.append(
                make_op(
                    i,
                    "webhook",
                    200,
                    t,
                    t + latency,
                    value={"event_id": f"evt_{i % 50}", "event_type": "x"},
                )
            )
    ops.sort(key=lambda o: o.t1)  # a history is in completion order
    return [
        Op(**{**{f: getattr(o, f) for f in o.__struct_fields__}, "index": i})
        for i, o in enumerate(ops)
    ]


def write(path: Path, ops: list[Op]) -> Path:
    with HistoryWriter(path) as writer:
        for o in ops:
            fields = {f: getattr(o, f) for f in o.__struct_fields__ if f not in ("index",)}
            writer.record(**fields)
    return path


def stats_of(facts: HistoryFacts) -> RequestStats:
    assert facts.stats is not None  # collected unless asked not to
    return facts.stats


def exact(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def test_counts_latency_and_series(tmp_path: Path) -> None:
    ops = mixed(20_000)
    facts = scan_history(write(tmp_path / "h.jsonl", ops))
    stats = stats_of(facts)
    assert stats.operations == len(ops)
    assert sum(stats.counts.values()) == len(ops)
    assert stats.counts[("POST /hold", 503, "info")] == sum(
        o.f == "hold" and o.status == 503 for o in ops
    )
    assert stats.server_errors == sum(o.status >= 500 for o in ops)
    assert stats.info_rate == pytest.approx(sum(o.type == "info" for o in ops) / len(ops))
    for endpoint in ("POST /pay", "POST /availability"):
        latencies = [o.latency_s for o in ops if o.endpoint == endpoint]
        summary = stats.latency[endpoint]
        assert summary.count == len(latencies)
        for q, got in ((0.5, summary.p50), (0.95, summary.p95), (0.99, summary.p99)):
            assert got == pytest.approx(exact(latencies, q), rel=0.01)
        assert summary.max == pytest.approx(max(latencies))
    assert stats.overall.p95 == pytest.approx(exact([o.latency_s for o in ops], 0.95), rel=0.01)
    assert [p.t for p in stats.series] == sorted({math.floor(o.t1) for o in ops})
    assert sum(p.requests for p in stats.series) == len(ops)
    assert sum(p.errors for p in stats.series) == sum(o.type == "info" for o in ops)
    second = [o.latency_s for o in ops if 30 <= o.t1 < 31]
    point = next(p for p in stats.series if p.t == 30)
    assert point.requests == len(second)
    assert point.p95 == pytest.approx(exact(second, 0.95), rel=0.01)


def test_scan_and_check_agree(tmp_path: Path) -> None:
    ops = mixed(5_000)
    path = write(tmp_path / "h.jsonl", ops)
    scanned, checked = scan_history(path), check_history(read_history(path))
    assert stats_of(scanned).counts == stats_of(checked).counts
    assert stats_of(scanned).overall == stats_of(checked).overall
    assert scanned.holds == checked.holds
    assert scanned.paid == checked.paid
    assert scanned.events == checked.events
    assert scanned.retries == checked.retries
    assert len(scanned.holds) // 2 == sum(o.f == "hold" and o.type == "ok" for o in ops)
    assert 400 < scanned.retries.keys <= 500  # some keys got only transient answers
    assert scanned.retries.conflicts  # 200 vs 202 vs 402 under one key


def test_a_line_cut_short_is_skipped_and_counted(tmp_path: Path) -> None:
    path = write(tmp_path / "h.jsonl", mixed(100))
    text = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(
        b"".join(text[:50]) + b'{"index": 50, "type": "ok", "f"\n' + b"".join(text[51:]) + b'{"ind'
    )
    facts = scan_history(path)
    assert facts.skipped_lines == 2
    assert stats_of(facts).operations == 99
    read = ReadStats()
    assert check_history(read_history(path, read), read_stats=read).skipped_lines == 2


def test_values_that_break_the_conventions_are_counted_not_fatal(tmp_path: Path) -> None:
    ops = [
        make_op(0, "hold", 201, 0, 1, value={"booking_id": "seven"}),
        make_op(1, "hold", 201, 0, 1),
        make_op(2, "hold", 201, 0, 1, value={"booking_id": 7}),
    ]
    for facts in (scan_history(write(tmp_path / "h.jsonl", ops)), check_history(ops)):
        assert facts.malformed_values == 2
        assert list(facts.holds) == [7, 2]


def test_the_series_grows_with_seconds_of_activity_not_with_operations() -> None:
    ops = [make_op(i, "availability", 200, i * 7.0, i * 7.0 + 0.01) for i in range(3000)]
    ops += [make_op(3000 + i, "availability", 200, 30_000.0, 30_000.5) for i in range(5000)]
    series = stats_of(check_history(ops)).series
    assert len(series) == 3001
    assert (series[-1].t, series[-1].requests) == (30_000, 5000)


def test_stragglers_of_a_closed_second_are_counted() -> None:
    ops = [make_op(i, "a", 200, i / 10, i / 10 + 0.05) for i in range(5000)]
    ops.append(make_op(5000, "a", 503, 0.0, 1.5))  # completes at 1.5 s, written last
    series = {p.t: p for p in stats_of(check_history(ops)).series}
    assert (series[1].requests, series[1].errors) == (11, 1)
    assert series[1].p95 == pytest.approx(0.05)


def test_out_of_order_completions_and_odd_clocks_are_handled() -> None:
    ops = [
        make_op(0, "a", 200, 5.0, 5.5),
        make_op(1, "a", 200, 1.0, 1.2),
        make_op(2, "a", 200, 3.0, 2.0),
    ]
    stats = stats_of(check_history(ops))
    assert [(p.t, p.requests) for p in stats.series] == [(1, 1), (2, 1), (5, 1)]
    assert stats.latency["POST /a"].count == 3
    assert stats.duration_s == pytest.approx(4.5)


def test_an_empty_history() -> None:
    facts = check_history([])
    assert stats_of(facts).operations == 0
    assert stats_of(facts).series == []
    assert stats_of(facts).overall.count == 0


def test_without_statistics_the_checkers_facts_are_the_same(tmp_path: Path) -> None:
    ops = mixed(3_000)
    path = write(tmp_path / "h.jsonl", ops)
    for full, lean in (
        (scan_history(path), scan_history(path, stats=False)),
        (check_history(ops), check_history(ops, stats=False)),
    ):
        assert full.stats is not None
        assert lean.stats is None
        assert (lean.holds, lean.paid, lean.events) == (full.holds, full.paid, full.events)
        assert lean.retries == full.retries
        assert (lean.skipped_lines, lean.malformed_values) == (
            full.skipped_lines,
            full.malformed_values,
        )
