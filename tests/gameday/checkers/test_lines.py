"""The lean reader: every line once, whatever the block size; unreadable lines counted."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gameday.checkers import lines as reader
from gameday.checkers import scan_history
from gameday.checkers.lines import Line, TimedLine, Value, read_lines
from gameday.history import Op

GOOD = msgspec.json.encode(
    Op(
        index=0,
        type="ok",
        f="hold",
        process="c",
        endpoint="POST /bookings",
        t0=1.0,
        t1=1.5,
        status=201,
        value={"booking_id": 7, "status": "held"},
    )
)


def _line(index: int, pad: int) -> bytes:
    """A payment line whose length grows with ``pad``."""
    return msgspec.json.encode(
        Op(
            index=index,
            type="ok",
            f="pay",
            process="c",
            endpoint="POST /pay",
            t0=index,
            t1=index + 0.5,
            status=200,
            idempotency_key="k" * pad,
            value={"digest": "d"},
        )
    )


def _read(path: Path, shape: type[Line] = Line) -> tuple[list[Line], int]:
    found: list[Line] = []
    bad = 0
    for lines, skipped in read_lines(path, shape):
        found += lines
        bad += skipped
    return found, bad


@settings(max_examples=40, deadline=None)
@given(
    pads=st.lists(st.integers(0, 300), max_size=30),
    block=st.integers(1, 400),
    newline_at_end=st.booleans(),
)
def test_every_line_is_read_once_whatever_the_block_size(
    tmp_path_factory: pytest.TempPathFactory, pads: list[int], block: int, newline_at_end: bool
) -> None:
    path = tmp_path_factory.mktemp("lines") / "h.jsonl"
    text = b"\n".join(_line(i, pad) for i, pad in enumerate(pads))
    path.write_bytes(text + b"\n" if newline_at_end and pads else text)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(reader, "BLOCK", block)
        found, bad = _read(path)
    assert bad == 0
    assert [(line.index, len(line.idempotency_key)) for line in found] == list(enumerate(pads))


def test_the_shapes_read_what_the_checkers_and_the_statistics_need(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    path.write_bytes(GOOD + b"\n")
    [line], _ = _read(path)
    assert line == Line(0, "ok", "hold", 201, value=Value(booking_id=7, status="held"))
    [timed], _ = _read(path, TimedLine)
    assert isinstance(timed, TimedLine)
    assert (timed.endpoint, timed.t0, timed.t1) == ("POST /bookings", 1.0, 1.5)


def test_a_value_off_the_conventions_is_dropped_and_the_line_kept(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    odd = GOOD.replace(b'"booking_id":7', b'"booking_id":"seven"')
    path.write_bytes(b"\n".join([GOOD, odd, GOOD]) + b"\n")
    for shape in (Line, TimedLine):
        found, bad = _read(path, shape)
        assert bad == 0
        assert [line.value is None for line in found] == [False, True, False]
        assert all(type(line) is shape for line in found)


def test_lines_that_are_not_operations_are_counted(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    broken = [b"[1, 2]", b'{"index": 1}', b'{"index": 2, "type": "ok", "f"', b"", b"  "]
    path.write_bytes(b"\n".join([GOOD, *broken, GOOD]) + b"\n")
    found, bad = _read(path)
    assert (len(found), bad) == (2, 3)


def test_a_line_without_times_is_unreadable_only_to_the_statistics(tmp_path: Path) -> None:
    """The checkers do not read times, so they can use the line; with statistics the
    line is skipped and counted, which can only make a verdict UNKNOWN, never PASS."""
    path = tmp_path / "h.jsonl"
    untimed = {"index": 1, "type": "ok", "f": "hold", "status": 201, "value": {"booking_id": 8}}
    path.write_bytes(GOOD + b"\n" + msgspec.json.encode(untimed) + b"\n")
    lines, bad = _read(path)
    assert ([line.index for line in lines], bad) == ([0, 1], 0)
    timed, bad = _read(path, TimedLine)
    assert ([line.index for line in timed], bad) == ([0], 1)
    lean, full = scan_history(path, stats=False), scan_history(path)
    assert (list(lean.holds), lean.skipped_lines) == ([7, 0, 8, 1], 0)
    assert (list(full.holds), full.skipped_lines) == ([7, 0], 1)
