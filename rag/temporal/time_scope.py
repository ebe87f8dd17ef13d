"""Which articles a question may use, by date: its `as_of` day and the period it names.

    scope = time_scope(snap, question, as_of, prefer="present")   → TimeScope
    retrieve(…, allow=scope.allow, keep=scope.keep)                 (rag.retrieve.retrieval)
    dates_of(snap) → DateTable   (per snapshot: publication days, relative-day anchors;
                                  `rag.retrieve.date_table`)

Invariants:
- A document's publication day and the day its relative days count from are
  `rag.retrieve.date_table`'s; an unknown day never excludes a document by `as_of` (it cannot be
  placed) nor puts it in a period.
- `as_of`: chunks of documents published after it are not used. No mask at all (no cost) when
  it is on or after the newest publication.
- An event the question times itself by ("before the 2024 election") is dated from the articles
  when they give it a day (`rag.temporal.time_events`), else by the date the question states with
  it.
- A period `[since, until]`: the ranking may use documents not excluded by `as_of` and not
  published before `since` (a later article may look back on the period); a chunk is kept
  (`keep`) when its document was published in the period, or its text states a time
  overlapping it — a year, month or day ("since 2017" spans 2017 to its article's date), or a
  relative day resolved from the anchor. `keep` is only asked about ranked chunks, best first,
  and each chunk's times are cached with the snapshot's date table.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from rag.choices import PreferNewest
from rag.retrieve.date_table import DateTable, dates_of, iso_span
from rag.temporal.time_events import event_day
from rag.temporal.time_query import Period, TimeIntent, intersect, time_intent

if TYPE_CHECKING:
    from rag.models import Passage
    from rag.retrieve.retrieval import Snapshot

__all__ = [
    "DateTable", "InScope", "TimeScope", "dates_of", "iso_span", "period_passages", "time_scope",
]


@dataclass(frozen=True, slots=True)
class TimeScope:
    """What one question may use: `allow` (a mask over chunk rows, None = all) and `keep`
    (a check on ranked rows, None = all); `intent` is what the question asked."""

    as_of: dt.date
    intent: TimeIntent
    allow: np.ndarray | None
    keep: Callable[[int], bool] | None
    published_by_as_of: bool  # some article (or an undated one) was published by as_of

    @property
    def period(self) -> Period | None:
        return self.intent.period

    def restricted(self) -> bool:
        return self.allow is not None or self.keep is not None

    def fields(self, *, answer: bool) -> dict[str, Any]:
        """What an Answer (`answer`) or a SearchResult reports of the scope."""
        from rag.models import Period as PeriodModel

        p = self.period
        out: dict[str, Any] = {
            "as_of": self.as_of,
            "period": None if p is None else PeriodModel(since=p.since, until=p.until),
        }
        if answer:
            out["prefer_newest"] = self.intent.prefer_newest
        return out

    def empty_reason(self) -> str:
        """Why no article may be used, for the abstention."""
        if not self.published_by_as_of:
            return f"none of them was published by {self.as_of}"
        assert self.period is not None
        return f"none of them is dated {self.period.describe()} or mentions that time"


@dataclass(frozen=True, slots=True)
class InScope:
    """One question over one snapshot within its time scope, with its retrieved passages: what
    every time step of an answer reads (`rag.temporal.time_answer`, `rag.temporal.time_llm`)."""

    snap: Snapshot
    scope: TimeScope
    question: str
    qvec: np.ndarray | None
    passages: list[Passage]

    def usable(self) -> list[Passage] | str:
        """The passages an answer may quote (a period narrows them to its sentences,
        `period_passages`), or why none may be used."""
        passages = self.passages
        if self.scope.period is not None:
            passages = period_passages(self.snap, passages, self.scope.period)
        if not passages and self.scope.restricted():
            return self.scope.empty_reason()
        return passages


def time_scope(
    snap: Snapshot, question: str, as_of: dt.date, prefer: PreferNewest = "present"
) -> TimeScope:
    """The scope of `question` asked on `as_of` over `snap` (see the module's invariants)."""
    intent = time_intent(question, as_of, present=prefer == "present")
    if prefer == "off" and intent.prefer_newest:
        intent = replace(intent, prefer_newest=False, reason=None)
    if intent.event is not None:
        intent = _dated_event(snap, intent, as_of)
    table = dates_of(snap)
    day = table.chunk_day
    cut = as_of.toordinal()
    allow = None if cut >= table.newest else day <= cut  # unknown days (0) always pass
    known = allow is None or bool(allow.any())
    period = intent.period
    keep = None
    if period is not None:
        if period.since is not None:
            after = (day == 0) | (day >= period.since.toordinal())
            allow = after if allow is None else allow & after
        keep = _keeper(snap, table, period)
    return TimeScope(as_of, intent, allow, keep, known)


def _dated_event(snap: Snapshot, intent: TimeIntent, as_of: dt.date) -> TimeIntent:
    """The intent with its event's period from the day the articles give it
    (`rag.temporal.time_events`),
    when they give one; else as the question's own date made it."""
    assert intent.event is not None
    day = event_day(snap, intent.event, as_of)
    if day is None:
        return intent
    periods = [p for p in (intent.fixed, intent.event.period(day)) if p is not None]
    return replace(intent, period=intersect(periods))


def _keeper(snap: Snapshot, table: DateTable, period: Period) -> Callable[[int], bool]:
    lo = period.since.toordinal() if period.since else 1
    hi = period.until.toordinal() if period.until else dt.date.max.toordinal()
    day = table.chunk_day

    def keep(row: int) -> bool:
        d = int(day[row])
        if d and lo <= d <= hi:
            return True
        return any(a <= hi and b >= lo for a, b in table.times(row))

    return keep


def period_passages(snap: Snapshot, passages: list[Passage], period: Period) -> list[Passage]:
    """What an answer about `period` may quote: a passage of an article published in it whole,
    of any other only its runs of sentences that state a time overlapping it (the Passage
    narrowed to each run, `document.text[start:end] == text` still)."""
    table = dates_of(snap)
    sent = snap.data.sentences
    lo_day = period.since.toordinal() if period.since else 1
    hi_day = period.until.toordinal() if period.until else dt.date.max.toordinal()
    out: list[Passage] = []
    for p in passages:
        day = table.published.get(p.doc_id)
        if day is not None and period.contains(day):
            out.append(p)
            continue
        lo, hi = snap.doc_sentences.get(p.doc_id, (0, 0))
        first = lo + int(np.searchsorted(sent.starts[lo:hi], p.start))
        runs: list[list[int]] = []
        for row in range(first, hi):
            if int(sent.ends[row]) > p.end:
                break
            if any(a <= hi_day and b >= lo_day for a, b in table.sentence_times(row)):
                if runs and runs[-1][-1] == row - 1:
                    runs[-1].append(row)
                else:
                    runs.append([row])
        text = snap.docs[p.doc_id].text
        for run in runs:
            start, end = int(sent.starts[run[0]]), int(sent.ends[run[-1]])
            out.append(p.model_copy(update={"start": start, "end": end, "text": text[start:end]}))
    return out
