"""Dense (FAISS), sparse (BM25) and hybrid (reciprocal rank fusion) retrieval over a snapshot.

A snapshot is one index version held entirely in memory and never mutated, so a request keeps
a consistent view while a newer version is loaded beside it.

Passages never repeat text: a lower-ranked chunk keeps only what better passages have not
returned, and a story published more than once (`rag.ingest.copies`) is returned once — from the
first of its copies to rank — with the others listed in each passage's `also_in` (the same
span in each copy's own offsets). The passages are the top_k left after that.
"""

from __future__ import annotations

import itertools
import math
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from rag.engines import DenseIndex, LexicalIndex, RowFilter
from rag.index import store
from rag.index.manifest import Manifest
from rag.index.store import IndexData
from rag.ingest.article_dates import full_date
from rag.ingest.copies import NO_COPIES, Copies
from rag.ingest.copy_record import groups_from
from rag.ingest.sentences import strip_span
from rag.memory import SNAPSHOTS_BOUND, CacheStat, register
from rag.models import Chunk, Document, Filters, Mode, Passage
from rag.retrieve.lexical import tokenize

MIN_PASSAGE_CHARS = 20  # a leftover shorter than this is not worth a passage of its own
KEEP_DEPTH = 200  # how deep the ranking goes when ranked rows are checked (`retrieve`'s keep)


SENTENCE_TERMS_CACHED = 65_536  # sentences whose terms a snapshot keeps (LRU, ~10 MB)

# Every snapshot loaded and not yet freed, so tests and /metrics can check that a hot swap
# really lets go of the previous version (weak: this set never keeps one alive).
_LOADED: weakref.WeakValueDictionary[tuple[str, int], Snapshot] = weakref.WeakValueDictionary()
_loads = itertools.count()


def loaded_snapshots(index_dir: Path | None = None) -> list[Snapshot]:
    """Snapshots still in memory anywhere in the process (of `index_dir`, or of every index)."""
    where = None if index_dir is None else str(Path(index_dir).resolve())
    items = list(_LOADED.items())
    return [s for (d, _), s in items if where is None or d == where]


def loaded_versions(index_dir: Path | None = None) -> list[str]:
    """Versions still in memory anywhere in the process (of `index_dir`, or of every index)."""
    return sorted(s.version for s in loaded_snapshots(index_dir))


register(
    "snapshots.loaded",
    lambda index_dir: CacheStat(len(loaded_versions(index_dir)), SNAPSHOTS_BOUND),
)


@dataclass(frozen=True, slots=True, weakref_slot=True)
class Snapshot:
    """One index version, loaded whole; never changed after `load` (the term cache aside,
    which is bounded and holds only values derivable from the version itself)."""

    version: str
    data: IndexData
    dense: DenseIndex
    lexical: LexicalIndex
    docs: dict[str, Document]
    doc_chunks: dict[str, tuple[int, int]]  # chunk row range per document
    doc_sentences: dict[str, tuple[int, int]]  # sentence row range per document
    idf: dict[str, float]  # BM25 idf of each stemmed term, for lexical evidence in answers
    sentence_terms: Callable[[int], tuple[str, ...]]  # row -> stemmed terms, LRU-bounded
    copies: Copies = NO_COPIES  # copy groups, alignments LRU-bounded (none: an older version)

    @property
    def manifest(self) -> Manifest:
        """What the version records about itself (a typed view of its manifest.json)."""
        return Manifest.from_dict(self.data.manifest)

    @property
    def chunks(self) -> list[Chunk]:
        return self.data.chunks

    @classmethod
    def load(cls, index_dir: Path) -> Snapshot:
        version, path = store.version_path(index_dir)
        data = store.read_data(path)
        dense, lexical = store.read_engines(path, data)
        docs = {d.id: d for d in data.documents}
        n = len(data.chunks)
        idf = {
            term: math.log(1 + (n - df + 0.5) / (df + 0.5))
            for term, df in lexical.document_frequencies().items()
        }
        snap = cls(
            version=version,
            data=data,
            dense=dense,
            lexical=lexical,
            docs=docs,
            doc_chunks=store.row_ranges([c.doc_id for c in data.chunks]),
            doc_sentences=store.row_ranges(data.sentences.doc_ids),
            idf=idf,
            sentence_terms=_sentence_terms(docs, data.sentences),
            copies=Copies.of(groups_from(Manifest.from_dict(data.manifest).copies), docs),
        )
        _LOADED[str(Path(index_dir).resolve()), next(_loads)] = snap
        return snap

    def cache_stats(self) -> tuple[int, int]:
        """(entries, bound) of this snapshot's sentence-term cache."""
        info = self.sentence_terms.cache_info()  # type: ignore[attr-defined]
        return int(info.currsize), int(info.maxsize)

    def copies_of(self, doc_id: str) -> tuple[str, ...]:
        """The other publications of `doc_id`'s story, canonical first; () when none."""
        return self.copies.others(doc_id)

    def canonical_of(self, doc_id: str) -> str:
        """The first publication of `doc_id`'s story (`doc_id` itself when it has no copies)."""
        return self.copies.story(doc_id)

    def term_idf(self, term: str) -> float:
        idf = self.idf.get(term)
        return self.max_idf if idf is None else idf  # max_idf only for unseen terms

    @property
    def max_idf(self) -> float:
        return math.log(1 + (len(self.data.chunks) + 0.5) / 0.5)


def _sentence_terms(
    docs: dict[str, Document], sentences: store.SentenceTable
) -> Callable[[int], tuple[str, ...]]:
    """A sentence's terms, tokenised once per snapshot rather than once per question."""

    @lru_cache(maxsize=SENTENCE_TERMS_CACHED)
    def terms(row: int) -> tuple[str, ...]:
        text = docs[sentences.doc_ids[row]].text
        return tuple(tokenize(text[int(sentences.starts[row]) : int(sentences.ends[row])]))

    return terms


# ---------------------------------------------------------------------------- filters


def row_filter(snap: Snapshot, filters: Filters | None) -> RowFilter | None:
    """The chunk rows the filters allow, or None when nothing is filtered."""
    if filters is None or filters.is_empty():
        return None
    mask = np.zeros(len(snap.chunks), dtype=bool)
    sources = [s.lower() for s in filters.sources or []]
    wanted = set(filters.doc_ids) if filters.doc_ids else None
    for doc_id, (lo, hi) in snap.doc_chunks.items():
        doc = snap.docs[doc_id]
        if wanted is not None and doc_id not in wanted:
            continue
        if sources and not (doc.source and any(s in doc.source.lower() for s in sources)):
            continue
        if filters.date_from or filters.date_to:
            day = full_date(doc.date)  # None: undated, or no year (cannot be compared)
            if day is None:
                continue
            if filters.date_from and day < filters.date_from:
                continue
            if filters.date_to and day > filters.date_to:
                continue
        mask[lo:hi] = True
    return RowFilter(mask, filters)


# ---------------------------------------------------------------------------- rankings


def dense_ranking(
    snap: Snapshot, qvec: np.ndarray, k: int, rows: RowFilter | None
) -> list[tuple[int, float]]:
    return snap.dense.search(qvec, k, rows)


def bm25_ranking(
    snap: Snapshot, query: str, k: int, rows: RowFilter | None
) -> list[tuple[int, float]]:
    return snap.lexical.search(tokenize(query), k, rows)


def fuse(
    rankings: Sequence[list[tuple[int, float]]], weights: Sequence[float], k: int
) -> list[tuple[int, float]]:
    """Reciprocal rank fusion: sum of weight / (k + rank); robust to incomparable scores."""
    fused: dict[int, float] = {}
    for ranking, w in zip(rankings, weights, strict=True):
        for rank, (row, _score) in enumerate(ranking, start=1):
            fused[row] = fused.get(row, 0.0) + w / (k + rank)
    return sorted(fused.items(), key=lambda rs: (-rs[1], rs[0]))


def mmr(
    snap: Snapshot, ranked: list[tuple[int, float]], lam: float, n: int
) -> list[tuple[int, float]]:
    """Maximal marginal relevance: trade relevance for novelty among the candidates."""
    if not ranked:
        return ranked
    rows = np.array([r for r, _ in ranked])
    rel = np.array([s for _, s in ranked], dtype=np.float32)
    span = float(rel.max() - rel.min()) or 1.0
    rel = (rel - rel.min()) / span
    vecs = snap.data.chunk_vectors[rows]
    chosen: list[int] = []
    best_sim = np.full(len(rows), -np.inf, dtype=np.float32)
    for _ in range(min(n, len(rows))):
        score = lam * rel - (1 - lam) * np.where(np.isfinite(best_sim), best_sim, 0.0)
        score[chosen] = -np.inf
        i = int(np.argmax(score))
        chosen.append(i)
        best_sim = np.maximum(best_sim, vecs @ vecs[i])
    return [ranked[i] for i in chosen]


def retrieve(
    snap: Snapshot,
    query: str,
    qvec: np.ndarray | None,
    *,
    mode: Mode,
    top_k: int,
    filters: Filters | None = None,
    rrf_k: int = 60,
    weights: tuple[float, float] = (1.0, 1.0),
    mmr_lambda: float | None = None,
    allow: np.ndarray | None = None,
    keep: Callable[[int], bool] | None = None,
) -> list[Passage]:
    """The top_k passages for a query; text shared by overlapping chunks is returned once.

    `allow` (a bool per chunk row, `rag.temporal.time_scope`) narrows `filters` further; `keep` is
    asked
    about ranked rows, best first, until top_k passages are found (the ranking goes deeper).
    """
    rows = row_filter(snap, filters)
    if allow is not None:
        rows = RowFilter(allow if rows is None else rows.mask & allow, filters or Filters())
    depth = max(50, 4 * top_k) if keep is None else max(KEEP_DEPTH, 8 * top_k)
    dense = dense_ranking(snap, qvec, depth, rows) if mode != "bm25" and qvec is not None else []
    sparse = bm25_ranking(snap, query, depth, rows) if mode != "dense" else []
    if mode == "dense":
        ranked = dense
    elif mode == "bm25":
        ranked = sparse
    else:
        ranked = fuse([dense, sparse], weights, rrf_k)
    kept: Iterable[tuple[int, float]] = ranked
    if keep is not None:
        kept = (rs for rs in ranked if keep(rs[0]))  # lazily: only until top_k are found
    if mmr_lambda is not None:
        kept = mmr(snap, list(kept), mmr_lambda, 3 * top_k)
    return merge_passages(snap, kept, top_k, dict(dense), dict(sparse))


def merge_passages(
    snap: Snapshot,
    ranked: Iterable[tuple[int, float]],
    top_k: int,
    dense_scores: dict[int, float],
    bm25_scores: dict[int, float],
) -> list[Passage]:
    """Turn ranked chunk rows into passages that never repeat text.

    Neighbouring chunks share their overlap sentences; a lower-ranked chunk keeps only the
    part not already returned (or is dropped if nothing is left). Unlike merging chunks into
    one long span, this keeps the best text first, which is what a reader or an LLM's context
    budget sees. A chunk of a copy of a story already returned from another of its copies is
    folded (dropped): each passage lists the story's copies in `also_in` instead.
    """
    covered: dict[str, list[tuple[int, int]]] = {}
    shown: dict[str, str] = {}  # story (its canonical) → the copy whose passages are returned
    picked: list[tuple[int, float, int, int]] = []
    for row, score in ranked:
        if len(picked) == top_k:
            break
        c = snap.chunks[row]
        story = snap.copies.story(c.doc_id)
        if shown.get(story, c.doc_id) != c.doc_id:
            continue  # folded into the copy returned first
        text = snap.docs[c.doc_id].text
        for a, b in _uncovered(c.start, c.end, covered.get(c.doc_id, [])):
            start, end = strip_span(text, a, b)
            if end - start < MIN_PASSAGE_CHARS or len(picked) == top_k:
                continue
            covered.setdefault(c.doc_id, []).append((start, end))
            shown[story] = c.doc_id
            picked.append((row, score, start, end))
    passages = []
    for rank, (row, score, start, end) in enumerate(picked, start=1):
        c = snap.chunks[row]
        doc = snap.docs[c.doc_id]
        passages.append(
            Passage.of(
                doc,
                start=start,
                end=end,
                text=doc.text[start:end],
                score=round(float(score), 6),
                rank=rank,
                chunk_id=c.id,
                dense_score=_round(dense_scores.get(row)),
                bm25_score=_round(bm25_scores.get(row)),
                also_in=snap.copies.also_in(doc.id, start, end),
            )
        )
    return passages


def _uncovered(start: int, end: int, taken: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Parts of [start, end) outside every interval in `taken`, in order."""
    pieces = [(start, end)]
    for a, b in taken:
        nxt = []
        for s, e in pieces:
            if b <= s or a >= e:
                nxt.append((s, e))
                continue
            if s < a:
                nxt.append((s, a))
            if b < e:
                nxt.append((b, e))
        pieces = nxt
    return pieces


def _round(x: float | None) -> float | None:
    return None if x is None else round(float(x), 6)
