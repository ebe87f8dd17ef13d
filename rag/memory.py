"""Memory housekeeping for a process that runs for weeks: cache bounds, native heap, tracemalloc.

Invariants:
- Every cache or memo in the process has a fixed bound, and `cache_stats()` lists each one with
  its current size and that bound; none grows with the number of distinct questions asked.
  A module that keeps a cache registers it here when it is imported (`register_lru`, or
  `register` with a probe); this module never reaches into another's private names.
- `trim_native_heap()` only returns free memory to the OS (glibc `malloc_trim`); it never
  changes what the program can observe, so calling it at any time is safe.
- `freeze_heap()` hides the objects alive at that moment from the cyclic garbage collector (they
  are still freed by reference counting); a server calls `thaw_heap()` before they can become
  cyclic garbage (an index swap) and freezes again once the old version is gone, so nothing
  stays frozen after it is dropped.
- Tracing (`start_tracing`) is off unless asked for; it dumps `tracemalloc` snapshots to a
  folder, on SIGUSR1, for comparing minute 5 with minute 30 of a soak.
"""

from __future__ import annotations

import functools
import gc
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

logger = logging.getLogger(__name__)

M_ARENA_MAX = -8  # glibc mallopt parameter


@dataclass(frozen=True, slots=True)
class CacheStat:
    """One cache: how many entries it holds now and the most it may ever hold."""

    size: int
    bound: int

    @property
    def within_bound(self) -> bool:
        return self.size <= self.bound


UNBOUNDED = sys.maxsize  # the bound reported for a cache without one (a defect)


def lru_stat(fn: Any) -> CacheStat:
    """Size and bound of a `functools.lru_cache`-wrapped function."""
    info = fn.cache_info()
    bound = UNBOUNDED if info.maxsize is None else int(info.maxsize)
    return CacheStat(size=int(info.currsize), bound=bound)


SNAPSHOTS_BOUND = 2  # the live version, and the previous one while requests finish on it


class HasCache(Protocol):
    """An object with a cache of its own (`rag.retrieve.retrieval.Snapshot`: its sentence terms)."""

    def cache_stats(self) -> tuple[int, int]: ...  # (entries, bound)


# A probe tells a cache's size and bound; it is given the index the report is about (None:
# every index), which only caches kept per index look at.
Probe = Callable[[Path | None], CacheStat]
_PROBES: dict[str, Probe] = {}


def register(name: str, probe: Probe) -> None:
    """List the cache `name` in every report from now on, as `probe(index_dir)` tells it."""
    _PROBES[name] = probe


def register_lru(name: str) -> Callable[[F], F]:
    """Decorator for a `functools.lru_cache`-wrapped function: list it as the cache `name`."""

    def registered(fn: F) -> F:
        register(name, lambda _index_dir: lru_stat(fn))
        return fn

    return registered


def cache_stats(
    snapshot: HasCache | None = None, index_dir: Path | None = None
) -> dict[str, CacheStat]:
    """Every registered cache with its size and bound (fixed at import; a module's caches are
    listed once it is imported), those kept per index as of `index_dir`, and, given the live
    snapshot, its term cache."""
    stats = {name: probe(index_dir) for name, probe in _PROBES.items()}
    if snapshot is not None:
        size, bound = snapshot.cache_stats()
        stats["snapshot.sentence_terms"] = CacheStat(size, bound)
    return stats


# ---------------------------------------------------------------------------------------------
# Native heap (glibc)
# ---------------------------------------------------------------------------------------------


@functools.cache
def _libc() -> Any | None:
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.malloc_trim  # noqa: B018 - not glibc (musl, macOS): no trimming
        libc.mallopt  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


def release_memory() -> bool:
    """Hand free native memory back to the OS (after a swap). No `gc.collect()` here: a full
    collection holds the GIL for long on a big heap, stalling the event loop; snapshots hold
    no reference cycles, so they are freed by reference counting alone (tested)."""
    return trim_native_heap()


def freeze_heap() -> None:
    """Collect garbage, then move every object alive now out of the cyclic collector's sight.

    A loaded model and index are hundreds of thousands of long-lived objects; without this each
    full collection walks all of them: 50 to 85 ms with the seeds index loaded, measured in
    `rag serve` under load, a pause every request in flight waits through. After freezing, a
    full collection walks only what came later. Frozen objects are still freed by reference
    counting, but a frozen reference cycle is never collected: call `thaw_heap` before
    long-lived objects may become garbage (an index swap), then freeze again.
    """
    gc.collect()
    gc.freeze()


def thaw_heap() -> None:
    """Undo `freeze_heap`: every object is the cyclic collector's again."""
    gc.unfreeze()


def trim_native_heap() -> bool:
    """Give free pages of every malloc arena back to the OS; True when glibc did so."""
    libc = _libc()
    if libc is None:
        return False
    return bool(libc.malloc_trim(0))


def limit_arenas(arenas: int) -> bool:
    """Cap glibc's malloc arenas (like MALLOC_ARENA_MAX) for arenas created from now on.

    glibc gives each new thread its own arena (up to 8 per core); a thread pool that grows
    and shrinks then scatters long-lived objects across many arenas whose free space is
    never reused by the others. Has no effect if the environment already set the variable.
    """
    libc = _libc()
    if libc is None or arenas <= 0 or "MALLOC_ARENA_MAX" in os.environ:
        return False
    return bool(libc.mallopt(M_ARENA_MAX, arenas))


# ---------------------------------------------------------------------------------------------
# Tracing (diagnostics only)
# ---------------------------------------------------------------------------------------------

_dump_lock = threading.Lock()


def start_tracing(folder: Path, frames: int = 1) -> None:
    """Start tracemalloc; each SIGUSR1 writes a snapshot to `folder` (trace-<unix ms>.pickle)."""
    import signal
    import tracemalloc

    folder.mkdir(parents=True, exist_ok=True)
    tracemalloc.start(frames)

    def dump(_signum: int, _frame: Any) -> None:
        threading.Thread(target=dump_snapshot, args=(folder,), daemon=True).start()

    signal.signal(signal.SIGUSR1, dump)
    logger.warning("tracemalloc on: SIGUSR1 dumps snapshots to %s", folder)


def dump_snapshot(folder: Path) -> Path | None:
    """Write one tracemalloc snapshot (only our own allocations' filters are applied later)."""
    import tracemalloc

    if not tracemalloc.is_tracing():
        return None
    with _dump_lock:
        path = folder / f"trace-{int(time.time() * 1000)}.pickle"
        tmp = path.with_suffix(".tmp")
        tracemalloc.take_snapshot().dump(str(tmp))
        tmp.rename(path)
        return path
