"""The history file: what is written is read back, in order, even after a torn last line."""

from __future__ import annotations

import threading
from pathlib import Path

from gameday.history import HistoryWriter, outcome_of, read_history
from gameday.history.store import ReadStats


def test_outcomes_follow_what_the_status_proves() -> None:
    assert [outcome_of(s) for s in (200, 201, 409, 401, 500, 503, 0)] == [
        "ok", "ok", "fail", "fail", "info", "info", "info",
    ]  # fmt: skip


def test_records_round_trip_in_order_across_blocks(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    with HistoryWriter(path) as writer:
        for i in range(30_000):  # more than one 1 MiB block
            t0 = writer.now()
            writer.record(
                type="ok", f="hold", process=f"c{i % 7}", endpoint="POST /bookings", t0=t0,
                status=201, idempotency_key=f"k{i}", value={"booking_id": i},
            )  # fmt: skip
    ops = list(read_history(path))
    assert [op.index for op in ops] == list(range(30_000))
    assert ops[-1].value == {"booking_id": 29_999}
    assert all(op.t1 >= op.t0 for op in ops)


def test_a_torn_last_line_is_skipped_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    with HistoryWriter(path) as writer:
        writer.record(type="info", f="pay", process="p", endpoint="POST /x", t0=0.0, error="x")
    with open(path, "ab") as file:
        file.write(b'{"index": 1, "type": "o')
    stats = ReadStats()
    ops = list(read_history(path, stats))
    assert [op.type for op in ops] == ["info"]
    assert stats.skipped == 1


def test_concurrent_writers_never_interleave_lines(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    with HistoryWriter(path) as writer:

        def write(name: str) -> None:
            for _ in range(2_000):
                writer.record(type="ok", f="get", process=name, endpoint="GET /", t0=writer.now())

        threads = [threading.Thread(target=write, args=(f"t{i}",)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    ops = list(read_history(path))
    assert len(ops) == 8_000
    assert sorted(op.index for op in ops) == list(range(8_000))


def test_reading_from_a_mark_skips_what_came_before(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    with HistoryWriter(path) as writer:
        for _ in range(3):
            writer.record(type="ok", f="a", process="p", endpoint="GET /", t0=writer.now())
        mark = writer.mark()
        writer.record(type="fail", f="b", process="p", endpoint="GET /", t0=writer.now())
        later = writer.mark()
    assert [op.f for op in read_history(path, start=mark)] == ["b"]
    assert list(read_history(path, start=later)) == []
    assert [op.index for op in read_history(path)] == [0, 1, 2, 3]
