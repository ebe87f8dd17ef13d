"""Timelines: the dated events of the articles about a question or a name, oldest first.

    build_timeline(snap, question, qvec, passages, filters=…, floor=…) → Timeline

The retrieved passages name the articles about the query (one article per copy group:
`rag.ingest.copies`); every sentence of those articles is scored against the query as answer
sentences
are (`rag.answer.answering.score_sentences`), and each article contributes its best sentence, plus
the
best sentence of every other day it names ("Halvard stepped down last month": within
`OTHER_DAY_MARGIN` of its best; a sentence dated only by its article: within `SAME_DAY_MARGIN`).
An article joins only when its best sentence is within `ARTICLE_MARGIN` of the best one
overall; no event scores below `floor` (the abstention threshold), and none is given when a
name or number of the query is in no retrieved passage (`short_answer.missing_terms`).

Invariants:
- Every event quotes its document exactly: `document.text[start:end] == quote`, a whole
  sentence less any headline or dateline before the story proper (`near_duplicates.
  body_start`); `relative`, when set, lies inside that span with `document.text[relative.start:
  relative.end] == relative.text`.
- Copies are folded: an event cites its copy group's first publication (the canonical) when the
  filters allow it, else the copy that retrieval returned, and lists the other copies in
  `also_in` at their own offsets. A story (`rag.temporal.stories`) gives at most one event per day,
  and
  no two events carry the same words (whitespace and case folded).
- `event_date` is the day (or week, month, year) a relative expression in the sentence names
  ("on Thursday", "yesterday", "last month": `rag.temporal.relative_dates`, counted from the story's
  first publication), else the date of that first publication. An event without a full date
  (an undated article, or one dated without its year) goes to `undated`, best first.
- `events` are ordered by the first day of `event_date`'s period (coarser periods first on a
  tie), then by the article's date and id; at most `MAX_EVENTS` events in all, the best ones.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from rag.answer import short_answer as short
from rag.answer.answering import ScoredSentence, score_sentences
from rag.ingest.article_dates import full_date
from rag.ingest.near_duplicates import body_start
from rag.models import (
    AS_OF_DESCRIPTION,
    PERIOD_DESCRIPTION,
    DocumentSpan,
    Filters,
    Mode,
    Passage,
    Period,
    ResolvedDate,
)
from rag.retrieve.retrieval import Snapshot, row_filter
from rag.temporal.relative_dates import resolve_relative
from rag.temporal.stories import Story, stories_of

TIMELINE_TOP_K = 20  # passages retrieved for a timeline unless the request says otherwise
MAX_EVENTS = 30
ARTICLE_MARGIN = 0.3  # an article's best sentence must score within this of the best overall
OTHER_DAY_MARGIN = 0.5  # a sentence naming a day of its own: within this of its article's best
SAME_DAY_MARGIN = 0.2  # one dated by its article alone: within this of its article's best
MIN_WORDS = 4  # shorter sentences ("(end)", "Seven ballots.") are not events


class Event(DocumentSpan):
    """One dated event: a sentence of an article, cited by its exact span."""

    event_date: str | None = Field(
        description="When it happened: YYYY-MM-DD (or YYYY-Www, YYYY-MM, YYYY when the text "
        "names a week, month or year); null for an undated event."
    )
    event_date_basis: Literal["published", "relative"] | None = Field(
        description="published: the story's first publication date; relative: the words in "
        "`relative`, counted from that date."
    )
    relative: ResolvedDate | None = Field(
        None, description="The words of the quote that name the event's day, when they do."
    )
    story: str = Field(description="The id of the story it belongs to (see `stories`).")
    quote: str


class Timeline(BaseModel):
    """Dated events for a query, oldest first, and the stories they belong to."""

    query: str
    mode: Mode
    events: list[Event] = Field(description="Oldest first.")
    undated: list[Event] = Field(
        default_factory=list, description="Events of articles without a full date, best first."
    )
    stories: list[Story] = Field(default_factory=list, description="Oldest first.")
    as_of: dt.date | None = Field(None, description=AS_OF_DESCRIPTION)
    period: Period | None = Field(None, description=PERIOD_DESCRIPTION)
    timings: dict[str, float] = Field(default_factory=dict, description="Milliseconds.")


@dataclass(frozen=True, slots=True)
class _Candidate:
    scored: ScoredSentence
    start: int  # the sentence less any headline or dateline
    event_date: str | None
    basis: Literal["published", "relative"] | None
    relative: ResolvedDate | None
    key: str  # the words, whitespace and case folded


def build_timeline(
    snap: Snapshot,
    question: str,
    qvec: np.ndarray | None,
    passages: Sequence[Passage],
    *,
    mode: Mode,
    filters: Filters | None = None,
    floor: float = 0.0,
) -> Timeline:
    """The timeline of `question` over the articles of `passages` (module docstring)."""
    empty = Timeline(query=question, mode=mode, events=[])
    docs = cited_documents(snap, passages, filters)
    if not docs or short.missing_terms(short.analyse(question), [p.text for p in passages]):
        return empty
    whole = [_whole(snap, d, rank) for rank, d in enumerate(docs, start=1)]
    bodies = {d: body_start(snap.docs[d].text) for d in docs}
    chosen = _select(snap, score_sentences(snap, question, qvec, whole), bodies, floor)
    stories = stories_of(snap, dict.fromkeys(c.scored.doc_id for c in chosen))
    story_of = {d: s.id for s in stories for d in s.doc_ids}
    days: set[tuple[str, str | None]] = set()  # a story gives one event a day, its best
    chosen = [c for c in chosen if _first((story_of[c.scored.doc_id], c.event_date), days)]
    events = [_event(snap, c, story_of[c.scored.doc_id]) for c in chosen[:MAX_EVENTS]]
    dated = sorted((e for e in events if e.event_date is not None), key=_order)
    undated = [e for e in events if e.event_date is None]
    kept = {e.story for e in events}
    return Timeline(
        query=question,
        mode=mode,
        events=dated,
        undated=undated,
        stories=[s for s in stories if s.id in kept],
    )


def cited_documents(
    snap: Snapshot, passages: Sequence[Passage], filters: Filters | None
) -> list[str]:
    """The articles of `passages` in rank order, one per copy group: its canonical when the
    filters allow it, else the copy retrieval returned."""
    rows = row_filter(snap, filters)
    out: dict[str, str] = {}
    for p in passages:
        canonical = snap.canonical_of(p.doc_id)
        allowed = rows is None or (
            canonical in snap.doc_chunks and bool(rows.mask[snap.doc_chunks[canonical][0]])
        )
        out.setdefault(canonical, canonical if allowed and canonical in snap.docs else p.doc_id)
    return list(out.values())


def _whole(snap: Snapshot, doc_id: str, rank: int) -> Passage:
    doc = snap.docs[doc_id]
    return Passage(
        doc_id=doc.id, title=doc.title, start=0, end=len(doc.text), text=doc.text,
        score=0.0, rank=rank, chunk_id=f"{doc.id}#*",
    )  # fmt: skip


def _start(snap: Snapshot, s: ScoredSentence, body: int) -> int | None:
    """Where the sentence starts as an event (after its article's headline and dateline: the
    story proper starts at `body`), or None when it is a headline or too short to be one."""
    start = max(s.start, body)
    return start if len(snap.docs[s.doc_id].text[start : s.end].split()) >= MIN_WORDS else None


def _candidate(snap: Snapshot, s: ScoredSentence, start: int) -> _Candidate:
    """The sentence from `start` as an event, dated (module docstring)."""
    doc = snap.docs[s.doc_id]
    text = doc.text[start : s.end]
    base = full_date(snap.docs[snap.canonical_of(doc.id)].date) or full_date(doc.date)
    key = " ".join(text.split()).casefold()
    for a, b, iso in resolve_relative(text, base):
        relative = ResolvedDate(start=start + a, end=start + b, text=text[a:b], date=iso)
        return _Candidate(s, start, iso, "relative", relative, key)
    if base is None:
        return _Candidate(s, start, None, None, None, key)
    return _Candidate(s, start, base.isoformat(), "published", None, key)


def _select(
    snap: Snapshot, scored: list[ScoredSentence], bodies: dict[str, int], floor: float
) -> list[_Candidate]:
    """The events among the `scored` sentences (best first): each relevant article's best
    sentence a day, never the same words twice (module docstring); best first. A sentence is
    dated only once it passes the cheaper tests."""
    best: float | None = None
    article_best: dict[str, float] = {}
    days: set[tuple[str, str | None]] = set()
    seen: set[str] = set()
    chosen = []
    for s in scored:
        if s.score < floor:
            break
        start = _start(snap, s, bodies[s.doc_id])
        if start is None:
            continue
        best = s.score if best is None else best
        top = article_best.setdefault(s.doc_id, s.score)
        if top < best - ARTICLE_MARGIN or s.score < top - OTHER_DAY_MARGIN:
            continue
        c = _candidate(snap, s, start)
        if c.basis != "relative" and s.score < top - SAME_DAY_MARGIN:
            continue
        if _first((s.doc_id, c.event_date), days) and _first(c.key, seen):
            chosen.append(c)
    return chosen


def _first(key: Any, seen: set[Any]) -> bool:
    """Whether `key` is new to `seen` (it is added)."""
    if key in seen:
        return False
    seen.add(key)
    return True


def _event(snap: Snapshot, c: _Candidate, story: str) -> Event:
    doc = snap.docs[c.scored.doc_id]
    return Event.of(
        doc,
        event_date=c.event_date,
        event_date_basis=c.basis,
        relative=c.relative,
        story=story,
        start=c.start,
        end=c.scored.end,
        quote=doc.text[c.start : c.scored.end],
        score=round(c.scored.score, 4),
        also_in=snap.copies.also_in(doc.id, c.start, c.scored.end),
    )


_PRECISION = {4: 0, 7: 1, 8: 2, 10: 3}  # len of YYYY, YYYY-MM, YYYY-Www, YYYY-MM-DD


def period_start(iso: str) -> dt.date:
    """The first day of an ISO 8601 year, month, week or day."""
    if "-W" in iso:
        year, week = iso.split("-W")
        return dt.date.fromisocalendar(int(year), int(week), 1)
    parts = [int(p) for p in iso.split("-")]
    return dt.date(parts[0], parts[1] if len(parts) > 1 else 1, parts[2] if len(parts) > 2 else 1)


def _order(e: Event) -> tuple[dt.date, int, str, str, int]:
    assert e.event_date is not None
    day = period_start(e.event_date)
    return (day, _PRECISION.get(len(e.event_date), 3), e.date or "", e.doc_id, e.start)


def timeline_text(t: Timeline) -> str:
    """The timeline for people (the CLI, MCP's readable text): one line per event, oldest
    first, then the undated events and the stories."""
    if not t.events and not t.undated:
        return "No dated events in the articles for this query."
    lines = [_event_line(e.event_date or "undated", e) for e in t.events]
    if t.undated:
        lines += ["", "Undated (the articles state no full date):"]
        lines += [_event_line(e.date or "undated", e) for e in t.undated]
    lines += ["", "Stories:"]
    for s in t.stories:
        days = " to ".join(dict.fromkeys(d for d in (s.first_date, s.last_date) if d)) or "undated"
        counted = f"{_plural(s.articles, 'report')} in {_plural(len(s.doc_ids), 'article')}"
        sources = ", ".join(s.sources) or "source not stated"
        lines.append(f"- {s.title} ({days}; {counted}: {sources})")
    return "\n".join(lines)


def _event_line(when: str, e: Event) -> str:
    also = "".join(f"; also in {a.doc_id} [{a.start}:{a.end}]" for a in e.also_in)
    quote = " ".join(e.quote.split())
    where = f"{e.source or 'source not stated'}, {e.doc_id} [{e.start}:{e.end}]{also}"
    return f'{when}  "{quote}" ({where})'


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"
