"""One snapshot's dates, per document and per chunk and sentence row (`rag.temporal.time_scope`,
`rag.temporal.time_events`, `rag.temporal.time_answer` read them).

    dates_of(snap) → DateTable        iso_span("2024-W06") → (monday, sunday)

Invariants:
- A document's publication day (`published`) is its full date. A partial one (`--MM-DD`, the
  year not stated) is placed when its story (`rag.ingest.copies`) has a first publication with a
  full
  date: on the first such month and day on or after it. Otherwise it is unknown (None; 0 in
  `chunk_day`).
- Relative days in a document ("on Thursday") count from its story's first publication when
  that has a full date (a copy republished a week later still means the original Thursday),
  else from the document's own publication day (`anchor`).
- `times(row)` / `sentence_times(row)`: the days a chunk's or sentence's text states (years,
  months, days: `rag.temporal.time_query.time_mentions`; relative days:
  `rag.temporal.relative_dates`), cached
  per snapshot (LRU, `MENTIONS_CACHED` rows each).
- Per snapshot, the table is built once (O(documents + chunks), numpy) and kept as long as the
  snapshot lives, weakly (`rag.retrieve.snapshot_cache`: listed in the memory report as
  `time_scope.tables`, its LRUs as `time_scope.mentions`). Nothing in it refers to the
  snapshot itself, so a swapped-out version is freed by reference counting.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rag.ingest.article_dates import full_date
from rag.memory import SNAPSHOTS_BOUND, CacheStat, lru_stat, register
from rag.retrieve.snapshot_cache import SnapshotCache
from rag.temporal.relative_dates import resolve_relative
from rag.temporal.time_query import time_mentions

if TYPE_CHECKING:
    from rag.models import Document
    from rag.retrieve.retrieval import Snapshot

MENTIONS_CACHED = 65_536  # chunks (and as many sentences) whose stated times a snapshot keeps
Times = tuple[tuple[int, int], ...]  # (first, last) day ordinals a chunk states


@dataclass(frozen=True, slots=True)
class DateTable:
    """One snapshot's dates: per document and per chunk row (day ordinals, 0 = unknown)."""

    published: dict[str, dt.date | None]
    anchor: dict[str, dt.date | None]  # what the document's relative days count from
    chunk_day: np.ndarray  # int32 per chunk row: its document's publication day ordinal, or 0
    newest: int  # the latest publication day ordinal (0: nothing dated)
    times: Callable[[int], Times]  # chunk row → the times its text states (LRU-cached)
    sentence_times: Callable[[int], Times]  # sentence row → the same


def _build(snap: Snapshot) -> DateTable:
    published: dict[str, dt.date | None] = {}
    anchor: dict[str, dt.date | None] = {}
    for doc_id, doc in snap.docs.items():
        first = full_date(snap.docs[snap.canonical_of(doc_id)].date)
        published[doc_id] = full_date(doc.date) or _placed(doc, first)
        anchor[doc_id] = first or published[doc_id]
    chunk_day = np.zeros(len(snap.chunks), dtype=np.int32)
    for doc_id, (lo, hi) in snap.doc_chunks.items():
        day = published.get(doc_id)
        if day is not None:
            chunk_day[lo:hi] = day.toordinal()
    newest = int(chunk_day.max()) if len(chunk_day) else 0
    docs, chunks, sentences = snap.docs, snap.chunks, snap.data.sentences  # never `snap` itself

    def chunk(row: int) -> tuple[str, int, int]:
        c = chunks[row]
        return c.doc_id, c.start, c.end

    def sentence(row: int) -> tuple[str, int, int]:
        return sentences.doc_ids[row], int(sentences.starts[row]), int(sentences.ends[row])

    return DateTable(
        published,
        anchor,
        chunk_day,
        newest,
        _times(docs, anchor, chunk),
        _times(docs, anchor, sentence),
    )


dates_of: SnapshotCache[DateTable] = SnapshotCache("time_scope.tables", _build)


def _mentions_stat(index_dir: Path | None) -> CacheStat:
    """The LRUs of the live tables together (two per snapshot)."""
    held = [
        lru_stat(f).size for t in dates_of.values(index_dir) for f in (t.times, t.sentence_times)
    ]
    return CacheStat(sum(held), 2 * MENTIONS_CACHED * SNAPSHOTS_BOUND)


register("time_scope.mentions", _mentions_stat)


def _placed(doc: Document, first: dt.date | None) -> dt.date | None:
    """A `--MM-DD` date placed on or after its story's first publication, when that has one."""
    if first is None or not (doc.date or "").startswith("--"):
        return None
    try:
        month, day = int(doc.date[2:4]), int(doc.date[5:7])  # type: ignore[index]
        placed = dt.date(first.year, month, day)
        return placed if placed >= first else dt.date(first.year + 1, month, day)
    except ValueError:  # Feb 29 in another year
        return None


def _times(
    docs: dict[str, Document],
    anchor: dict[str, dt.date | None],
    span: Callable[[int], tuple[str, int, int]],
) -> Callable[[int], Times]:
    """Row → the times its text (`span(row)`: doc_id, start, end) states."""

    @lru_cache(maxsize=MENTIONS_CACHED)
    def times(row: int) -> Times:
        doc_id, start, end = span(row)
        text = docs[doc_id].text[start:end]
        base = anchor.get(doc_id)
        out = [(m.since.toordinal(), m.until.toordinal()) for m in time_mentions(text, base)]
        for _, _, iso in resolve_relative(text, base):
            days = iso_span(iso)
            if days is not None:
                out.append((days[0].toordinal(), days[1].toordinal()))
        return tuple(out)

    return times


def iso_span(iso: str) -> tuple[dt.date, dt.date] | None:
    """The days of an ISO 8601 value at its precision: YYYY-MM-DD, YYYY-Www, YYYY-MM, YYYY."""
    try:
        if len(iso) == 10:
            day = dt.date.fromisoformat(iso)
            return day, day
        if "W" in iso:
            monday = dt.date.fromisocalendar(int(iso[:4]), int(iso[6:]), 1)
            return monday, monday + dt.timedelta(days=6)
        if len(iso) == 7:
            first = dt.date(int(iso[:4]), int(iso[5:]), 1)
            following = dt.date(first.year + first.month // 12, first.month % 12 + 1, 1)
            return first, following - dt.timedelta(days=1)
        return dt.date(int(iso), 1, 1), dt.date(int(iso), 12, 31)
    except ValueError:
        return None
