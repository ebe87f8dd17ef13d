"""The day of an event a question times itself by ("before the 2024 parliamentary election"),
read from the articles.

    event_day(snap, event, as_of) → datetime.date | None

Invariants:
- Only articles published by `as_of` (or undated) are read: the chunks BM25 ranks best for the
  event's words (`EVENT_CHUNKS`), and in them only the sentences that contain the event's noun
  as a word ("election", "elections"; not "elected").
- In each such sentence the time stated nearest to the noun counts, if it is one day: a full
  or month-and-day date ("the January 28 election"), or a relative day resolved from the
  story's first publication ("Sunday's parliamentary election"). A day outside the date the
  question states with the event ("of March 2024") or after `as_of` does not count.
- The event's day is the day most sentences give (ties: the latest); None when none gives one
  — the question's own date, if any, is used then (`rag.temporal.time_query`).
- Pure reads of the snapshot; costs one BM25 search and a few sentences' regexes, only for
  questions that name an event.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from typing import TYPE_CHECKING

import numpy as np

from rag.engines import RowFilter
from rag.models import Filters
from rag.retrieve.date_table import dates_of
from rag.retrieve.retrieval import bm25_ranking
from rag.temporal.relative_dates import resolve_relative
from rag.temporal.time_query import time_mentions

if TYPE_CHECKING:
    from rag.retrieve.retrieval import Snapshot
    from rag.temporal.time_query import Event

EVENT_CHUNKS = 20  # chunks read for an event's day


def event_day(snap: Snapshot, event: Event, as_of: dt.date) -> dt.date | None:
    """The day the articles give for `event` (see the module's invariants)."""
    table = dates_of(snap)
    rows = RowFilter(table.chunk_day <= as_of.toordinal(), Filters())
    noun = re.compile(rf"\b{re.escape(event.head)}s?\b", re.IGNORECASE)
    lo, hi = event.span or (dt.date.min, as_of)
    days: Counter[dt.date] = Counter()
    sent = snap.data.sentences
    for row, _ in bm25_ranking(snap, " ".join(event.words), EVENT_CHUNKS, rows):
        c = snap.chunks[row]
        text = snap.docs[c.doc_id].text
        first, last = snap.doc_sentences.get(c.doc_id, (0, 0))
        start = first + int(np.searchsorted(sent.starts[first:last], c.start))
        for r in range(start, last):
            s, e = int(sent.starts[r]), int(sent.ends[r])
            if e > c.end:
                break
            day = _nearest_day(text[s:e], noun, table.anchor.get(c.doc_id))
            if day is not None and lo <= day <= min(hi, as_of):
                days[day] += 1
    if not days:
        return None
    return max(days, key=lambda d: (days[d], d))


def _nearest_day(sentence: str, noun: re.Pattern[str], anchor: dt.date | None) -> dt.date | None:
    """The one-day time stated nearest to the noun in the sentence, if the noun is there."""
    found = noun.search(sentence)
    if found is None:
        return None
    at = found.start()
    times = [(m.start, m.end, m.since, m.until) for m in time_mentions(sentence, anchor)]
    for a, b, iso in resolve_relative(sentence, anchor):
        if len(iso) == 10:
            day = dt.date.fromisoformat(iso)
            times.append((a, b, day, day))
    if not times:
        return None
    a, b, since, until = min(times, key=lambda t: min(abs(t[0] - at), abs(t[1] - at)))
    return since if since == until else None
