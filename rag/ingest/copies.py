"""Copies of a story in an index version: found while building, folded while answering.

    build:    CopySigner.add(doc, stored) per document → CopySigner.group(texts) → CopyGroups
              → `signatures` table (one row per document) + the manifest's `copies` record
    question: Copies (on the Snapshot) → story(doc_id), others(doc_id), also_in(doc, start, end)

Invariants:
- Every document of a version built with this module has its `rag.ingest.near_duplicates` signature
  in the `signatures` table. A build signs only the documents it loads (new or changed
  files); a document kept from the previous version copies its stored signature when that
  version recorded the same `SIGNATURE_FORMAT` (`reusable`), a renamed or duplicated file
  (same bytes and text as another document of the build) reuses that one's. So a no-op
  signs nothing and an incremental build signs what changed.
- The manifest's `copies` record holds the signature format, the thresholds and the groups
  (`[canonical, copy, …]`, as `group_copies` returns them; `rag.ingest.copy_record`). A version
  without the record (built before copies were detected) loads with no groups; `is_current`
  is false for it, so the next `rag index` writes a version that has them, signing every
  document but embedding nothing (no rebuild: vectors and rows are copied as for any kept
  document).
- Groups come from `group_copies` over every document of the version with exact decisions
  (the candidates' texts read lazily from the version being written). Byte-identical
  documents (same sha256 and text length) are grouped once, as one: the others join its
  group (they are copies of whatever it is a copy of) in `canonical_priority` order, so a
  corpus of many identical replicas costs one document's comparisons, not n² of them.
  Deterministic: the same documents give the same groups.
- Memory: one `Signature` (≈ 1.1 KiB) per distinct text while a build runs, beside the
  writer's other per-document bookkeeping; LSH buckets while grouping.
- Question time: `Copies.also_in` maps a span of one member into every other member of its
  group, in group order, skipping those where it is not mappable; `copy.text[start:end]` is
  the matching span (`Alignment.map_span`). Alignments are computed on first use and kept in
  a bounded LRU (`ALIGNMENTS_CACHED` pairs); nothing else is mutable.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from rag.ingest import near_duplicates as nd
from rag.ingest.alignment import Alignment, align
from rag.ingest.copy_record import THRESHOLDS
from rag.models import AlsoIn, Document

ALIGNMENTS_CACHED = 256  # (document, copy) pairs whose word alignment a snapshot keeps


# ---------------------------------------------------------------------------- the manifest
# (its `copies` record: `rag.ingest.copy_record.manifest_record`, `is_current`, `groups_from`)


def reusable(con: sqlite3.Connection, record: Mapping[str, Any]) -> bool:
    """Whether a version's stored signatures (its manifest's `copies` record says how they
    were made) can be copied into a new version."""
    if record.get("signature_format") != nd.SIGNATURE_FORMAT:
        return False
    q = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'signatures'"
    return con.execute(q).fetchone() is not None


def stored_signature(con: sqlite3.Connection, doc_id: str) -> bytes | None:
    row = con.execute("SELECT signature FROM signatures WHERE doc_id = ?", (doc_id,)).fetchone()
    return None if row is None else bytes(row[0])


class StoredTexts(Mapping[str, str]):
    """doc id → text, read from a version's documents table only when asked for."""

    def __init__(self, con: sqlite3.Connection) -> None:
        self.con = con

    def __getitem__(self, doc_id: str) -> str:
        row = self.con.execute("SELECT text FROM documents WHERE id = ?", (doc_id,)).fetchone()
        if row is None:
            raise KeyError(doc_id)
        return str(row[0])

    def __iter__(self) -> Iterator[str]:
        return (r[0] for r in self.con.execute("SELECT id FROM documents ORDER BY id"))

    def __len__(self) -> int:
        return int(self.con.execute("SELECT COUNT(*) FROM documents").fetchone()[0])


# ---------------------------------------------------------------------------- building


@dataclass(slots=True)
class CopySigner:
    """One build's signatures (mutable while the build runs; see the module docstring)."""

    signatures: dict[str, nd.Signature] = field(default_factory=dict)
    dates: dict[str, str | None] = field(default_factory=dict)
    first: dict[str, str] = field(default_factory=dict)  # doc id → first identical doc's id
    _by_key: dict[tuple[str, int], str] = field(default_factory=dict)  # (sha256, chars) → id
    signed: int = 0
    seconds: float = 0.0

    def add(self, doc: Document, stored: Callable[[], bytes | None] | None = None) -> bytes:
        """`doc`'s signature (its bytes, for the signatures table): a byte-identical document's
        of this build, else the stored one `stored()` returns, else signed now."""
        t0 = time.perf_counter()
        first = self._by_key.setdefault((doc.sha256, len(doc.text)), doc.id)
        sig = self.signatures[first] if first != doc.id else None
        if sig is None and stored is not None:
            sig = _parse(stored())
        if sig is None:
            sig = nd.sign(doc.text)
            self.signed += 1
        self.signatures[doc.id], self.dates[doc.id], self.first[doc.id] = sig, doc.date, first
        self.seconds += time.perf_counter() - t0
        return sig.to_bytes()

    def group(self, texts: Mapping[str, str]) -> list[nd.CopyGroup]:
        """The version's copy groups: identical documents grouped once (module docstring)."""
        t0 = time.perf_counter()
        twins: dict[str, list[str]] = {}
        for doc_id, first in self.first.items():
            if first != doc_id:
                twins.setdefault(first, []).append(doc_id)
        unique = {d: self.signatures[d] for d, first in self.first.items() if first == d}
        found = nd.group_copies(unique, self.dates, THRESHOLDS, texts=texts)
        grouped = {d for g in found for d in g.members}
        members = [list(g.members) for g in found] + [[d] for d in twins if d not in grouped]
        groups = []
        for ids in members:
            ids += [twin for d in list(ids) for twin in twins.get(d, [])]
            ids.sort(key=lambda d: nd.canonical_priority(d, self.signatures, self.dates))
            groups.append(nd.CopyGroup(ids[0], tuple(ids[1:])))
        self.seconds += time.perf_counter() - t0
        return sorted(groups, key=lambda g: g.canonical)


def _parse(data: bytes | None) -> nd.Signature | None:
    if data is None:
        return None
    try:
        return nd.Signature.from_bytes(data)
    except ValueError:
        return None


# ---------------------------------------------------------------------------- questions


@dataclass(frozen=True, slots=True)
class Copies:
    """A loaded version's copy groups, and the spans of a story in each of its copies."""

    group_of: Mapping[str, nd.CopyGroup]  # every member of a group → its group
    docs: Mapping[str, Document]
    alignment: Callable[[str, str], Alignment]  # (document, copy) → alignment, LRU-bounded

    @classmethod
    def of(cls, groups: list[nd.CopyGroup], docs: Mapping[str, Document]) -> Copies:
        group_of = {}
        for g in groups:
            members = tuple(d for d in g.members if d in docs)
            if len(members) > 1:
                kept = nd.CopyGroup(members[0], members[1:])
                group_of.update(dict.fromkeys(members, kept))

        @lru_cache(maxsize=ALIGNMENTS_CACHED)
        def alignment(doc_id: str, copy_id: str) -> Alignment:
            return align(docs[doc_id].text, docs[copy_id].text)

        return cls(group_of, docs, alignment)

    @property
    def groups(self) -> list[nd.CopyGroup]:
        return sorted(set(self.group_of.values()), key=lambda g: g.canonical)

    def story(self, doc_id: str) -> str:
        """The canonical document of `doc_id`'s group (`doc_id` itself when it has no copies)."""
        group = self.group_of.get(doc_id)
        return doc_id if group is None else group.canonical

    def others(self, doc_id: str) -> tuple[str, ...]:
        """The other members of `doc_id`'s group, canonical first; () when it has none."""
        group = self.group_of.get(doc_id)
        return () if group is None else tuple(d for d in group.members if d != doc_id)

    def also_in(self, doc_id: str, start: int, end: int) -> list[AlsoIn]:
        """`[start, end)` of `doc_id` in each of its copies where it maps, in group order;
        each entry keeps its alignment, so that a sub-span maps too (`AlsoIn.mapped`)."""
        out = []
        for other in self.others(doc_id):
            alignment = self.alignment(doc_id, other)
            span = alignment.map_span(start, end)
            if span is None:
                continue
            copy = self.docs[other]
            entry = AlsoIn(
                doc_id=other, start=span[0], end=span[1], source=copy.source, date=copy.date
            )
            entry._alignment = alignment
            out.append(entry)
        return out

    def cache_stats(self) -> tuple[int, int]:
        """(entries, bound) of the alignment cache."""
        info = self.alignment.cache_info()  # type: ignore[attr-defined]
        return int(info.currsize), int(info.maxsize)


NO_COPIES = Copies.of([], {})
