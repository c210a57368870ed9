"""The history on disk: JSON lines, appended as operations complete, read back streaming.

Written by hand because it is two small loops around ``msgspec``: the writer encodes into
one reusable buffer and writes in blocks (a drill records thousands of operations a second,
so a syscall per line would cost more than the encoding), and the reader decodes blocks of
lines with a typed decoder, so a million-operation history is checked in constant memory.
A line cut short by a crash is skipped and counted, never fatal: the evidence before it stands.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import msgspec

from gameday.history.model import Op, OpType

_BLOCK = 1 << 20
_FLUSH_EVERY_S = 0.5


class HistoryWriter:
    """Append-only; ``record`` assigns ``index`` and ``t0``/``t1`` are relative to ``start``.

    Thread-safe (the drill's monitor thread and the load loop both write), bounded in
    memory (the buffer is flushed at ``_BLOCK`` bytes or every half second).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.start = time.monotonic()
        self.count = 0
        self._encoder = msgspec.json.Encoder()
        self._buffer = bytearray()
        self._lock = threading.Lock()
        self._last_flush = self.start
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[bytes] | None = open(path, "ab")  # noqa: SIM115 - closed in close()

    def now(self) -> float:
        """Seconds since the history started: the clock of ``t0`` and ``t1``."""
        return time.monotonic() - self.start

    def record(
        self,
        *,
        type: OpType,
        f: str,
        process: str,
        endpoint: str,
        t0: float,
        t1: float | None = None,
        **fields: Any,
    ) -> Op:
        with self._lock:
            op = Op(
                index=self.count,
                type=type,
                f=f,
                process=process,
                endpoint=endpoint,
                t0=t0,
                t1=self.now() if t1 is None else t1,
                **fields,
            )
            self.count += 1
            self._encoder.encode_into(op, self._buffer, len(self._buffer))
            self._buffer.extend(b"\n")
            if len(self._buffer) >= _BLOCK or op.t1 + self.start - self._last_flush > (
                _FLUSH_EVERY_S
            ):
                self._flush()
        return op

    def flush(self) -> None:
        with self._lock:
            self._flush()

    def mark(self) -> int:
        """Flush, and the file's length: ``read_history(path, start=mark)`` then reads only
        what was recorded after this call (a phase's operations, without re-reading every
        phase before it)."""
        with self._lock:
            self._flush()
            return self._file.tell() if self._file is not None else 0

    def _flush(self) -> None:
        if self._file is not None and self._buffer:
            self._file.write(self._buffer)
            self._file.flush()
            self._buffer.clear()
        self._last_flush = time.monotonic()

    def close(self) -> None:
        with self._lock:
            self._flush()
            if self._file is not None:
                os.fsync(self._file.fileno())
                self._file.close()
                self._file = None

    def __enter__(self) -> HistoryWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class ReadStats:
    """Filled in while ``read_history`` runs: lines that could not be decoded."""

    def __init__(self) -> None:
        self.skipped = 0


def read_history(path: Path, stats: ReadStats | None = None, start: int = 0) -> Iterator[Op]:
    """Every operation of the history at ``path`` from byte ``start`` (a ``mark``), in file
    order, in constant memory."""
    decoder = msgspec.json.Decoder(Op)
    with open(path, "rb") as file:
        file.seek(start)
        tail = b""
        while True:
            block = file.read(_BLOCK)
            if not block:
                break
            block = tail + block
            cut = block.rfind(b"\n")
            if cut < 0:
                tail = block
                continue
            tail = block[cut + 1 :]
            yield from _decode(decoder, block[: cut + 1], stats)
        if tail.strip():
            yield from _decode(decoder, tail, stats)


def _decode(
    decoder: msgspec.json.Decoder[Op], chunk: bytes, stats: ReadStats | None
) -> Iterator[Op]:
    try:
        yield from decoder.decode_lines(chunk)
    except msgspec.DecodeError:
        for line in chunk.splitlines():  # find the bad line(s); keep every good one
            if not line.strip():
                continue
            try:
                yield decoder.decode(line)
            except msgspec.DecodeError:
                if stats is not None:
                    stats.skipped += 1
