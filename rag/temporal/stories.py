"""Stories: the articles of one index version that report one event, grouped.

    story_of(snap, doc_id) → Story        stories_of(snap, doc_ids) → [Story], oldest first

Invariants:
- Copies of an article (`Snapshot.copies`, found at build time by `rag.ingest.near_duplicates`) are
  always one story, and count once in `Story.articles`.
- A report is a copy group (or an article without copies), represented by its canonical (its
  first publication). Two reports are linked when both canonicals carry a full date at most
  `STORY_DAYS` apart and their article vectors (the mean of the article's stored chunk
  vectors, normalised) have a cosine of at least `STORY_SIMILARITY`. Stories are found by
  complete linkage (every two reports of a story are linked, so a chain of merely related
  reports never becomes one story), taken in first-publication order over the connected
  component of the links; neither depends on which article a caller starts from — up to
  `MAX_STORY_REPORTS` reports in a component, where the walk stops.
- A report without a full date (none, or `--MM-DD`) is a story of its own.
- A story's members are ordered first publication first: earliest full date (undated ones
  last), then longest text, then smallest id — the order `near_duplicates` picks a canonical
  by; the first report's canonical id is the story's id and its title the story's title.
- Deterministic and read-only: the same version gives the same stories. Per snapshot, a table of
  the fully dated reports sorted by day is built on first use and dropped with the snapshot;
  article vectors are read from the memory-mapped chunk vectors when needed, never cached.
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, Field

from rag.ingest.article_dates import full_date
from rag.models import Document, DocumentRef
from rag.retrieve.retrieval import Snapshot
from rag.retrieve.snapshot_cache import SnapshotCache

STORY_DAYS = 2  # two reports of one event are published at most this many days apart
# Cosine of two article vectors (copies ≈ .95). On the BBC set given random dates in one month,
# pairs at ≥ .88 are mostly one developing story (a strike's talks, a doping case); at .75 they
# are often only one subject (UK politics before an election) and chain into one big "story".
STORY_SIMILARITY = 0.88
MAX_STORY_REPORTS = 64  # a story's walk stops here (a bound on the cost of one story)


class StoryArticle(DocumentRef):
    """One article of a story."""

    copy_of: str | None = Field(
        None, description="The article this one republishes (its copy group's canonical)."
    )


class Story(BaseModel):
    """Articles about one event: copies of one report and other reports of the same event."""

    id: str = Field(description="The story's first publication (its first article's doc_id).")
    title: str
    first_date: str | None = Field(None, description="Earliest full date of its articles.")
    last_date: str | None = Field(None, description="Latest full date of its articles.")
    sources: list[str] = Field(description="Distinct sources, first publication first.")
    doc_ids: list[str] = Field(description="Every article, first publication first.")
    articles: int = Field(description="Distinct reports: the copies of one count once.")
    members: list[StoryArticle]


@dataclass(frozen=True, slots=True)
class _DayTable:
    """The fully dated articles of a snapshot, sorted by day (ordinal)."""

    days: np.ndarray  # int64 ordinals, ascending
    ids: tuple[str, ...]

    @classmethod
    def of(cls, docs: Iterable[Document]) -> _DayTable:
        dated = sorted((day.toordinal(), d.id) for d in docs if (day := full_date(d.date)))
        return cls(np.array([o for o, _ in dated], dtype=np.int64), tuple(i for _, i in dated))

    def near(self, ordinal: int, days: int) -> tuple[str, ...]:
        lo = int(np.searchsorted(self.days, ordinal - days, side="left"))
        hi = int(np.searchsorted(self.days, ordinal + days, side="right"))
        return self.ids[lo:hi]


def _build_day_table(snap: Snapshot) -> _DayTable:
    return _DayTable.of(d for d in snap.data.documents if snap.canonical_of(d.id) == d.id)


# The snapshot's day table, built once (dropped when the snapshot is freed).
_day_table: SnapshotCache[_DayTable] = SnapshotCache("stories.day_tables", _build_day_table)


def article_vectors(snap: Snapshot, doc_ids: Sequence[str]) -> np.ndarray:
    """Each article's chunk vectors averaged and normalised, one row per id (zeros for an
    article without chunks), read in one gather from the stored vectors."""
    ranges = [snap.doc_chunks.get(d, (0, 0)) for d in doc_ids]
    rows = np.concatenate([np.arange(lo, hi) for lo, hi in ranges] or [np.arange(0)])
    out = np.zeros((len(doc_ids), snap.data.chunk_vectors.shape[1]), dtype=np.float32)
    counts = np.array([hi - lo for lo, hi in ranges])
    if len(rows):
        vectors = np.asarray(snap.data.chunk_vectors[rows], dtype=np.float32)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        has = counts > 0
        out[has] = np.add.reduceat(vectors, starts[has], axis=0)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return np.divide(out, norms, out=out, where=norms > 0)


def priority(doc: Document) -> tuple[bool, str, int, str]:
    """An article's place in its story: earliest full date first, then longest, then id."""
    day = full_date(doc.date)
    return (day is None, day.isoformat() if day else "", -len(doc.text), doc.id)


def _linked(snap: Snapshot, table: _DayTable, report: str) -> list[str]:
    """The other reports (canonical ids) linked to `report`: dated at most `STORY_DAYS` apart
    with article vectors at least `STORY_SIMILARITY` alike."""
    day = full_date(snap.docs[report].date)
    if day is None:
        return []
    near = [d for d in table.near(day.toordinal(), STORY_DAYS) if d != report]
    if not near:
        return []
    vectors = article_vectors(snap, [report, *near])
    cosines = vectors[1:] @ vectors[0]
    return [d for d, c in zip(near, cosines.tolist(), strict=True) if c >= STORY_SIMILARITY]


def _component(snap: Snapshot, table: _DayTable, report: str) -> list[str]:
    """The reports reachable from `report` through links, first publication first."""
    seen = {report}
    queue = deque([report])
    while queue and len(seen) < MAX_STORY_REPORTS:
        for other in _linked(snap, table, queue.popleft()):
            if other not in seen and len(seen) < MAX_STORY_REPORTS:
                seen.add(other)
                queue.append(other)
    return sorted(seen, key=lambda d: priority(snap.docs[d]))


def story_reports(snap: Snapshot, doc_id: str) -> list[str]:
    """The reports (copy groups, by canonical id) of `doc_id`'s story, first publication first:
    complete linkage in that order over the component of its report (module docstring)."""
    report = snap.canonical_of(doc_id)
    units = _component(snap, _day_table(snap), report)
    if len(units) == 1:
        return units
    vectors = article_vectors(snap, units)
    alike = (vectors @ vectors.T) >= STORY_SIMILARITY
    # (every report of a component of two or more is fully dated: undated ones link to none)
    days = np.array([dt.date.fromisoformat(str(snap.docs[u].date)).toordinal() for u in units])
    linked = alike & (np.abs(days[:, None] - days[None, :]) <= STORY_DAYS)
    groups: list[list[int]] = []
    for i in range(len(units)):
        group = next((g for g in groups if all(linked[i, j] for j in g)), None)
        if group is None:
            groups.append([i])
        else:
            group.append(i)
    mine = next(g for g in groups if units.index(report) in g)
    return [units[i] for i in mine]


def story_of(snap: Snapshot, doc_id: str) -> Story:
    """`doc_id`'s story: its first report's id and title, every article of it (its reports and
    their copies) first publication first."""
    reports = story_reports(snap, doc_id)
    ids = dict.fromkeys(d for r in reports for d in (r, *snap.copies_of(r)))
    docs = sorted((snap.docs[d] for d in ids), key=priority)
    days = [day for d in docs if (day := full_date(d.date))]
    members = []
    for d in docs:
        canonical = snap.canonical_of(d.id)
        copy_of = canonical if canonical != d.id else None
        members.append(StoryArticle.of(d, copy_of=copy_of))
    return Story(
        id=reports[0],
        title=snap.docs[reports[0]].title,
        first_date=min(days).isoformat() if days else None,
        last_date=max(days).isoformat() if days else None,
        sources=list(dict.fromkeys(d.source for d in docs if d.source)),
        doc_ids=[d.id for d in docs],
        articles=len(reports),
        members=members,
    )


def stories_of(snap: Snapshot, doc_ids: Iterable[str]) -> list[Story]:
    """The stories of these articles, each once, oldest first (undated ones last, by id)."""
    found: dict[str, Story] = {}
    member_of: dict[str, str] = {}
    for doc_id in doc_ids:
        if doc_id in member_of or doc_id not in snap.docs:
            continue
        story = story_of(snap, doc_id)
        found.setdefault(story.id, story)
        member_of.update(dict.fromkeys(story.doc_ids, story.id))
    return sorted(found.values(), key=lambda s: (s.first_date is None, s.first_date or "", s.id))
