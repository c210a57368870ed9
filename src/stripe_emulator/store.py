"""In-memory collections with O(1) lookups and Stripe's list pagination.

Each collection keeps a dict by id and the ids in creation order with their position, so
``retrieve`` and a ``starting_after`` cursor are O(1) and a ``created`` range is a bisect;
secondary indexes (by customer, by payment intent ...) are the same ordered structure.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from stripe_emulator.errors import ResourceMissingError, ValidationError


class Record(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def created(self) -> int: ...


T = TypeVar("T", bound=Record)


class OrderedIds:
    """Ids in creation order, with their positions and creation stamps."""

    __slots__ = ("created", "ids", "pos")

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.created: list[int] = []
        self.pos: dict[str, int] = {}

    def append(self, object_id: str, created: int) -> None:
        self.pos[object_id] = len(self.ids)
        self.ids.append(object_id)
        self.created.append(created)


@dataclass(frozen=True, slots=True)
class CreatedRange:
    gt: int | None = None
    gte: int | None = None
    lt: int | None = None
    lte: int | None = None

    def bounds(self, stamps: list[int]) -> tuple[int, int]:
        lo, hi = 0, len(stamps)
        if self.gte is not None:
            lo = max(lo, bisect_left(stamps, self.gte))
        if self.gt is not None:
            lo = max(lo, bisect_right(stamps, self.gt))
        if self.lte is not None:
            hi = min(hi, bisect_right(stamps, self.lte))
        if self.lt is not None:
            hi = min(hi, bisect_left(stamps, self.lt))
        return lo, hi


@dataclass(frozen=True, slots=True)
class Page:
    limit: int = 10
    starting_after: str | None = None
    ending_before: str | None = None
    created: CreatedRange = CreatedRange()


class Collection(Generic[T]):
    def __init__(self, kind: str, indexes: dict[str, Callable[[T], str | None]] | None = None):
        self.kind = kind
        self.by_id: dict[str, T] = {}
        self.order = OrderedIds()
        self._index_keys = indexes or {}
        self._indexes: dict[str, dict[str, OrderedIds]] = {name: {} for name in self._index_keys}

    def __len__(self) -> int:
        return len(self.by_id)

    def add(self, record: T) -> T:
        self.by_id[record.id] = record
        self.order.append(record.id, record.created)
        for name, key_of in self._index_keys.items():
            key = key_of(record)
            if key is not None:
                self._indexes[name].setdefault(key, OrderedIds()).append(record.id, record.created)
        return record

    def reindex(self, name: str, record: T, old_key: str | None) -> None:
        """Move ``record`` when the attribute an index is keyed on changes.

        Index entries stay in creation order, so the record goes back to its creation slot
        (by its position in the primary order), not to the end. O(size of the two keys).
        """
        new_key = self._index_keys[name](record)
        if new_key == old_key:
            return
        index = self._indexes[name]
        if old_key is not None and old_key in index:
            index[old_key] = self._rebuilt(index[old_key], drop=record.id)
        if new_key is not None:
            index[new_key] = self._rebuilt(index.get(new_key, OrderedIds()), add=record.id)

    def _rebuilt(self, ids: OrderedIds, drop: str = "", add: str = "") -> OrderedIds:
        members = [i for i in ids.ids if i != drop] + ([add] if add else [])
        members.sort(key=self.order.pos.__getitem__)
        rebuilt = OrderedIds()
        for object_id in members:
            rebuilt.append(object_id, self.order.created[self.order.pos[object_id]])
        return rebuilt

    def remove(self, object_id: str) -> None:
        """Forget a record; ordered ids keep its slot so cursors stay valid, lists skip it."""
        self.by_id.pop(object_id, None)

    def get(self, object_id: str, param: str = "id") -> T:
        record = self.by_id.get(object_id)
        if record is None:
            raise ResourceMissingError(self.kind, object_id, param)
        return record

    def list(
        self,
        page: Page,
        index: tuple[str, str] | None = None,
        keep: Callable[[T], bool] | None = None,
    ) -> tuple[list[T], bool]:
        """One page, newest first, and whether more exist in the paging direction."""
        source = (
            self.order if index is None else self._indexes[index[0]].get(index[1], OrderedIds())
        )
        lo, hi = page.created.bounds(source.created)
        newer_first = page.ending_before is None
        if page.starting_after is not None:
            hi = min(hi, self._cursor(source, page.starting_after, "starting_after"))
        if page.ending_before is not None:
            lo = max(lo, self._cursor(source, page.ending_before, "ending_before") + 1)
        picked: list[T] = []
        positions = range(hi - 1, lo - 1, -1) if newer_first else range(lo, hi)
        for position in positions:
            record = self.by_id.get(source.ids[position])
            if record is None or (keep is not None and not keep(record)):
                continue
            if len(picked) == page.limit:
                return (picked if newer_first else picked[::-1]), True
            picked.append(record)
        return (picked if newer_first else picked[::-1]), False

    def _cursor(self, source: OrderedIds, object_id: str, param: str) -> int:
        position = source.pos.get(object_id)
        if position is None:
            raise ValidationError(
                f"No such {self.kind}: '{object_id}'", code="resource_missing", param=param
            )
        return position

    def __iter__(self) -> Iterator[T]:
        return iter(self.by_id.values())
