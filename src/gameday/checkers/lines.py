"""History lines as the checkers read them: lean structs, decoded a block at a time.

``Op`` carries every field the drill writes; the checkers read a few. Decoding into a
struct that declares only those lets msgspec skip the rest without building objects for
them, and types ``value`` as the few fields the checkers use (a typed struct decodes faster
than the dict ``Op`` carries). Two shapes:

- ``Line``: what the checkers read (outcome, operation, key, error, value);
- ``TimedLine``: also what the request statistics read (endpoint, ``t0``, ``t1``).

A line is unreadable when it is not JSON or lacks (or mistypes) a field of the shape it is
read as, so a line missing only its times counts as unreadable with statistics and
readable without: the difference can turn a history checker's verdict to UNKNOWN, never
to PASS. A line
whose ``value`` breaks the conventions is kept without its value (the operation still
counts; the checkers count the value as malformed).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import msgspec

from gameday.history import OpType

BLOCK = 1 << 18
"""Bytes read at a time: big enough that the per-block work is noise, small enough that a
block's decoded lines are still in the CPU cache when the checkers pick them over."""


class Value(msgspec.Struct, frozen=True, gc=False):
    booking_id: int | None = None
    payment_id: int | None = None
    status: str | None = None
    digest: str | None = None
    event_id: str | None = None


class Line(msgspec.Struct, frozen=True, gc=False):
    """An ``Op`` line as the checkers read it: undeclared fields are skipped unparsed."""

    index: int
    type: OpType
    f: str
    status: int = 0
    idempotency_key: str = ""
    error: str = ""
    value: Value | None = None


class TimedLine(Line, frozen=True, gc=False, kw_only=True):
    """The same line with what the request statistics read."""

    endpoint: str
    t0: float
    t1: float


L = TypeVar("L", bound=Line)


def read_lines(path: Path, shape: type[L]) -> Iterator[tuple[list[L], int]]:
    """The file at ``path`` as runs of decoded lines, each with how many of its lines could
    not be decoded; about ``BLOCK`` bytes at a time, so memory stays bounded."""
    decoder = msgspec.json.Decoder(shape)
    for chunk in _chunks(path):
        yield _decode(decoder, shape, chunk)


def _chunks(path: Path) -> Iterator[bytes | memoryview]:
    """Runs of whole lines, about ``BLOCK`` bytes each, and the line that straddles two
    blocks on its own (so no block is copied to join it to the next)."""
    with open(path, "rb") as file:
        tail = b""
        while block := file.read(BLOCK):
            first = block.find(b"\n") + 1
            if not first:  # the middle of a line longer than a block
                tail += block
                continue
            cut = block.rfind(b"\n") + 1
            yield tail + block[:first]
            if cut > first:
                yield memoryview(block)[first:cut]
            tail = block[cut:]
        if tail.strip():
            yield tail


def _decode(
    decoder: msgspec.json.Decoder[L], shape: type[L], chunk: bytes | memoryview
) -> tuple[list[L], int]:
    """The chunk's lines and how many could not be read; line by line only if needed."""
    try:
        return decoder.decode_lines(chunk), 0
    except msgspec.DecodeError:
        pass
    lines: list[L] = []
    bad = 0
    for text in bytes(chunk).splitlines():  # keep every good line around a bad one
        if not text.strip():
            continue
        try:
            lines.append(decoder.decode(text))
        except msgspec.ValidationError:
            line = _without_value(text, shape)
            if line is None:
                bad += 1
            else:
                lines.append(line)
        except msgspec.DecodeError:
            bad += 1
    return lines, bad


def _without_value(text: bytes, shape: type[L]) -> L | None:
    """The line read again without its ``value``, if that is what broke it."""
    try:
        fields = msgspec.json.decode(text)
        if isinstance(fields, dict) and fields.pop("value", None) is not None:
            return msgspec.convert(fields, shape)
    except msgspec.DecodeError:  # ValidationError included: something else is wrong too
        pass
    return None
