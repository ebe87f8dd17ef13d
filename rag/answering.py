"""Extractive answers: the best one to three sentences of the retrieved passages, each cited.

A sentence's score mixes its semantic similarity to the question (its vector was pooled at
index time from the chunk's token embeddings, so scoring needs no model call) with lexical
evidence: the share of the question's rare terms (idf-weighted) that it contains. When even
the best sentence scores below the abstention threshold, the assistant says the articles don't
contain the answer rather than quoting something merely related.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from dataclasses import dataclass

import numpy as np

from rag.lexical import tokenize
from rag.models import AnswerDraft, Citation, Passage
from rag.retrieval import Snapshot

LEXICAL_WEIGHT = 0.5  # how much full coverage of the question's terms adds to the cosine
CLOSE_MARGIN = 0.06  # extra sentences must score within this of the best one
ABSTAIN_TEXT = "The articles don't contain an answer to this question."

_SPACES = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class ScoredSentence:
    doc_id: str
    start: int
    end: int
    semantic: float
    lexical: float
    score: float
    passage_rank: int


def lexical_coverage(snap: Snapshot, question_terms: list[str], text: str) -> float:
    """idf-weighted share of the question's distinct terms present in `text` (0..1)."""
    wanted = set(question_terms)
    if not wanted:
        return 0.0
    present = wanted & set(tokenize(text))
    total = sum(snap.term_idf(t) for t in wanted)
    return sum(snap.term_idf(t) for t in present) / total if total else 0.0


def score_sentences(
    snap: Snapshot, question: str, qvec: np.ndarray | None, passages: list[Passage]
) -> list[ScoredSentence]:
    """Every indexed sentence inside the passages, scored against the question, best first."""
    terms = tokenize(question)
    sent = snap.data.sentences
    rows: list[int] = []
    ranks: list[int] = []
    seen: set[int] = set()
    for p in passages:
        lo, hi = snap.doc_sentences.get(p.doc_id, (0, 0))
        starts = sent.starts[lo:hi]
        a = lo + bisect_left(starts, p.start)
        b = lo + bisect_right(starts, p.end - 1)
        for r in range(a, b):
            if sent.ends[r] <= p.end and r not in seen:
                seen.add(r)
                rows.append(r)
                ranks.append(p.rank)
    if not rows:
        return []
    if qvec is not None:
        semantic = sent.vectors[rows].astype(np.float32) @ qvec.astype(np.float32)
    else:
        semantic = np.zeros(len(rows), dtype=np.float32)
    out = []
    for r, sem, rank in zip(rows, semantic.tolist(), ranks, strict=True):
        doc = snap.docs[sent.doc_ids[r]]
        s, e = int(sent.starts[r]), int(sent.ends[r])
        lex = lexical_coverage(snap, terms, doc.text[s:e])
        out.append(ScoredSentence(doc.id, s, e, sem, lex, sem + LEXICAL_WEIGHT * lex, rank))
    out.sort(key=lambda x: (-x.score, x.passage_rank, x.doc_id, x.start))
    return out


def pick_sentences(scored: list[ScoredSentence], limit: int) -> list[ScoredSentence]:
    """The best sentence plus close runners-up that add something, in reading order."""
    if not scored:
        return []
    best = scored[0]
    chosen = [best]
    seen_text: set[tuple[str, int]] = {(best.doc_id, best.start)}
    for s in scored[1:]:
        if len(chosen) >= limit or s.score < best.score - CLOSE_MARGIN:
            break
        if (s.doc_id, s.start) not in seen_text:
            chosen.append(s)
            seen_text.add((s.doc_id, s.start))
    doc_order = {d: i for i, d in enumerate(dict.fromkeys(s.doc_id for s in chosen))}
    return sorted(chosen, key=lambda s: (doc_order[s.doc_id], s.start))


def extractive_answer(
    snap: Snapshot,
    question: str,
    qvec: np.ndarray | None,
    passages: list[Passage],
    *,
    max_sentences: int,
    threshold: float,
) -> AnswerDraft:
    scored = score_sentences(snap, question, qvec, passages)
    confidence = scored[0].score if scored else 0.0
    if not scored or confidence < threshold:
        return AnswerDraft(ABSTAIN_TEXT, [], abstained=True, confidence=round(confidence, 4))
    parts: list[str] = []
    citations: list[Citation] = []
    for n, s in enumerate(pick_sentences(scored, max_sentences), start=1):
        doc = snap.docs[s.doc_id]
        quote = doc.text[s.start : s.end]
        parts.append(f"{_SPACES.sub(' ', quote)} [{n}]")
        citations.append(
            Citation(
                n=n,
                doc_id=doc.id,
                title=doc.title,
                source=doc.source,
                start=s.start,
                end=s.end,
                quote=quote,
                score=round(s.score, 4),
            )
        )
    return AnswerDraft(" ".join(parts), citations, abstained=False, confidence=round(confidence, 4))
