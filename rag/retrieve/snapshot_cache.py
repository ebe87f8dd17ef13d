"""Values computed once per index snapshot and dropped with it (date tables, day tables).

    dates = SnapshotCache("time_scope.tables", build)     # at import: listed in the memory report
    table = dates(snap)                                    # built on first use, then shared

Invariants:
- Weak: an entry never keeps its snapshot alive, and goes when the snapshot is freed (a weak
  reference's callback, by reference counting alone: no `gc.collect()` needed). A value must
  not refer to its snapshot (build it from the snapshot's parts: `docs`, `chunks`, `data`), or
  the snapshot would never be freed.
- Bounded by the snapshots alive (`rag.memory.SNAPSHOTS_BOUND` per index); the cache is listed
  in `rag.memory.cache_stats` under its name with that bound, counted for the index asked about.
- Thread-safe: two threads asking at once may both build; one value is kept, both are equal.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Generic, TypeVar

from rag.memory import SNAPSHOTS_BOUND, CacheStat, register
from rag.retrieve.retrieval import Snapshot, loaded_snapshots

T = TypeVar("T")


class SnapshotCache(Generic[T]):
    """`build(snapshot)`, once per snapshot, held as long as the snapshot lives."""

    def __init__(self, name: str, build: Callable[[Snapshot], T]) -> None:
        self._build = build
        self._held: dict[int, tuple[weakref.ref[Snapshot], T]] = {}
        self._lock = threading.RLock()  # a callback may fire while it is held
        register(
            name, lambda index_dir: CacheStat(len(list(self.values(index_dir))), SNAPSHOTS_BOUND)
        )

    def __call__(self, snap: Snapshot) -> T:
        key = id(snap)
        with self._lock:
            held = self._held.get(key)
        if held is not None and held[0]() is snap:
            return held[1]
        value = self._build(snap)
        with self._lock:
            held = self._held.get(key)
            if held is not None and held[0]() is snap:
                return held[1]  # another thread built it meanwhile
            self._held[key] = (weakref.ref(snap, lambda _ref: self._drop(key)), value)
        return value

    def _drop(self, key: int) -> None:
        with self._lock:
            held = self._held.get(key)
            if held is not None and held[0]() is None:
                del self._held[key]

    def values(self, index_dir: Path | None = None) -> Iterator[T]:
        """The values held for the live snapshots of `index_dir` (of every index: None)."""
        with self._lock:
            held = list(self._held.values())
        wanted = None if index_dir is None else {id(s) for s in loaded_snapshots(index_dir)}
        for ref, value in held:
            snap = ref()
            if snap is not None and (wanted is None or id(snap) in wanted):
                yield value
