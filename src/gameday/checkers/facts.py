"""One streaming pass over the history, keeping only what the history checkers need.

A drill's history can hold millions of operations, so it is read once, a block at a
time, and reduced to ``HistoryFacts``: the acknowledged writes (holds, succeeded payments,
webhook events) as compact integer arrays, for each idempotency key its first answer plus
any answer that differed from it, and, unless asked not to, the request statistics.
Nothing else of an operation outlives its block.

Checking and statistics are separate costs. The checkers look at about half of the
operations (holds, payments, webhooks) and never at their times or endpoints; the
statistics read every operation's times and sort a million latencies, which costs about
as much again. ``stats=False`` skips them (``HistoryFacts.stats`` is then ``None``); the
checkers pass it when they reduce operations themselves, since none of them reads the
statistics.

``scan_history(path)`` is the fast way: it decodes each line into a lean struct
(``lines.Line``, or ``lines.TimedLine`` with statistics) that skips the fields it does not
read. ``check_history(ops)`` does the same over ``Op`` objects already in hand, such as
``read_history``'s.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import chain, islice
from operator import attrgetter
from pathlib import Path
from typing import NamedTuple, Protocol, TypeVar

import msgspec

from gameday.checkers.lines import Line, TimedLine, Value, read_lines
from gameday.checkers.stats import RequestStats, StatsCollector
from gameday.history import Op
from gameday.history.store import ReadStats

NOT_REPLAYED = frozenset(
    {
        # "Try again": the first request under the key is still executing.
        "idempotency_in_progress",
        "payment_in_progress",
        # Refused before the key is looked at (expired token, rate limit), or a different
        # request reusing the key (422): none of these is an answer *to* the keyed request.
        "not_authenticated",
        "rate_limited",
        "idempotency_key_mismatch",
    }
)
"""Error codes whose answers are left out of "all answers to one key are the same"."""
_BATCH = 4096
_CONFLICTS_PER_KEY = 10


class Answer(NamedTuple):
    status: int
    digest: str
    op_index: int


@dataclass(frozen=True)
class RetryFacts:
    keys: int
    answers: int
    """Answers compared (the first answer of each key included)."""
    excluded: int
    """Answers left out: a ``NOT_REPLAYED`` error code."""
    without_digest: int
    conflicts: dict[str, list[Answer]]
    """Per key whose answers differ: its first answer, then those that differed from it."""


@dataclass(frozen=True)
class HistoryFacts:
    stats: RequestStats | None
    """The request statistics; ``None`` when the pass was asked not to collect them."""
    holds: array[int]
    """Acknowledged holds, flat: ``[booking_id, op_index, booking_id, op_index, …]``."""
    paid: array[int]
    """Acknowledged succeeded payments, flat: ``[payment_id, booking_id, op_index, …]``
    (-1 where the answer named no id)."""
    events: dict[str, int]
    """Acknowledged webhook event ids, each with the first op index that delivered it."""
    retries: RetryFacts
    skipped_lines: int
    """Lines of the history that could not be decoded (a crash cut one short)."""
    malformed_values: int
    """Operations whose ``value`` did not follow the conventions (ignored)."""

    def missing(self) -> list[str]:
        """Why the history may be incomplete: an unreadable line may have been anything."""
        if not self.skipped_lines:
            return []
        n = self.skipped_lines
        return [f"history: {n} line{'s' * (n != 1)} could not be decoded"]


class _Recorded(Protocol):
    """What the checkers read from an operation (``Op`` and ``Line`` alike)."""

    @property
    def index(self) -> int: ...
    @property
    def type(self) -> str: ...
    @property
    def f(self) -> str: ...
    @property
    def status(self) -> int: ...
    @property
    def idempotency_key(self) -> str: ...
    @property
    def error(self) -> str: ...


_R = TypeVar("_R", bound=_Recorded)
_Values = list[Value | None]
_VALUE = attrgetter("value")


def _line_values(lines: Sequence[Line]) -> _Values:
    return list(map(_VALUE, lines))


def _dict_values(ops: Sequence[Op]) -> _Values:
    """``Op.value`` dicts as ``Value``: one conversion for the batch, one per value only
    when some value breaks the conventions."""
    raw = list(map(_VALUE, ops))
    try:
        return msgspec.convert(raw, _Values)
    except msgspec.ValidationError:
        pass
    found: _Values = []
    for value in raw:
        try:
            found.append(None if value is None else msgspec.convert(value, Value))
        except msgspec.ValidationError:
            found.append(None)
    return found


class _Collector:
    """Per block, comprehensions pick out the few operations each checker needs (a Python
    statement per operation would cost as much as decoding the line); acknowledged writes
    are kept as flat integer arrays, e.g. ``holds = [booking, op, booking, op, …]``."""

    def __init__(self, transient: frozenset[str]) -> None:
        self.transient = transient
        self.holds, self.paid = array("q"), array("q")
        self.events: dict[str, int] = {}
        self.first: dict[str, tuple[int, str, int]] = {}
        self.conflicts: dict[str, list[Answer]] = {}
        self.answers = self.excluded = self.without_digest = self.malformed = 0

    def feed(self, block: Sequence[_R], values_of: Callable[[list[_R]], _Values]) -> None:
        holds = [o for o in block if o.type == "ok" and o.f == "hold"]
        pays = [o for o in block if o.f == "pay" and o.type != "info"]
        hooks = [o for o in block if o.type == "ok" and o.f == "webhook"]
        values = values_of(holds + pays + hooks)
        paid_at, hooked_at = len(holds), len(holds) + len(pays)
        held = [(v.booking_id, o.index) for o, v in zip(holds, values[:paid_at], strict=True)
                if v is not None and v.booking_id is not None]  # fmt: skip
        self.holds.extend(chain.from_iterable(held))
        self._pays(pays, values[paid_at:hooked_at])
        hooked = [(v.event_id, o.index) for o, v in zip(hooks, values[hooked_at:], strict=True)
                  if v is not None and v.event_id is not None]  # fmt: skip
        setdefault = self.events.setdefault
        for event_id, index in hooked:
            setdefault(event_id, index)
        self.malformed += len(holds) - len(held) + len(hooks) - len(hooked)

    def _pays(self, pays: Sequence[_Recorded], values: _Values) -> None:
        """One loop, locals only: a fifth of the operations, each needing several tests."""
        setdefault, transient = self.first.setdefault, self.transient
        acked: list[tuple[int, int, int]] = []
        answers = excluded = without_digest = malformed = 0
        for op, value in zip(pays, values, strict=True):
            if value is None:
                malformed += 1
                continue
            if value.status == "succeeded" and op.type == "ok":
                payment, booking = value.payment_id, value.booking_id
                acked.append((-1 if payment is None else payment,
                              -1 if booking is None else booking, op.index))  # fmt: skip
            key, digest = op.idempotency_key, value.digest
            if not key:
                continue
            if op.error in transient:
                excluded += 1
            elif digest is None:
                without_digest += 1
            else:
                answers += 1
                answer = (op.status, digest, op.index)
                seen = setdefault(key, answer)
                if seen is not answer and (seen[0] != answer[0] or seen[1] != digest):
                    self._differs(key, seen, answer)
        self.paid.extend(chain.from_iterable(acked))
        self.answers += answers
        self.excluded += excluded
        self.without_digest += without_digest
        self.malformed += malformed

    def _differs(self, key: str, seen: tuple[int, str, int], answer: tuple[int, str, int]) -> None:
        differing = self.conflicts.setdefault(key, [Answer(*seen)])
        if len(differing) <= _CONFLICTS_PER_KEY:
            differing.append(Answer(*answer))

    def finish(self, stats: RequestStats | None, skipped: int) -> HistoryFacts:
        retries = RetryFacts(len(self.first), self.answers, self.excluded, self.without_digest,
                             self.conflicts)  # fmt: skip
        return HistoryFacts(
            stats, self.holds, self.paid, self.events, retries, skipped, self.malformed
        )


def check_history(
    ops: Iterable[Op], *, transient: frozenset[str] = NOT_REPLAYED,
    read_stats: ReadStats | None = None, stats: bool = True,
) -> HistoryFacts:  # fmt: skip
    """The facts of operations already decoded; ``read_stats`` is ``read_history``'s."""
    collector, source = _Collector(transient), iter(ops)
    timing = StatsCollector() if stats else None
    while batch := list(islice(source, _BATCH)):
        if timing is not None:
            timing.feed(batch)
        collector.feed(batch, _dict_values)
    skipped = read_stats.skipped if read_stats is not None else 0
    return collector.finish(timing.finish() if timing is not None else None, skipped)


def scan_history(
    path: Path, *, transient: frozenset[str] = NOT_REPLAYED, stats: bool = True
) -> HistoryFacts:
    """The facts of the history file at ``path``, in one pass and bounded memory."""
    collector, skipped = _Collector(transient), 0
    if not stats:
        for lines, bad in read_lines(path, Line):
            collector.feed(lines, _line_values)
            skipped += bad
        return collector.finish(None, skipped)
    timing = StatsCollector()
    for timed, bad in read_lines(path, TimedLine):
        timing.feed(timed)
        collector.feed(timed, _line_values)
        skipped += bad
    return collector.finish(timing.finish(), skipped)
