"""Extractive answers: the best one to three sentences of the retrieved passages, each cited,
best first, with a short answer (`rag.answer.short_answer`) whose sentence is citation [1].

A sentence's score mixes its semantic similarity to the question (its vector was pooled at
index time from the chunk's token embeddings, so scoring needs no model call) with lexical
evidence: the share of the question's rare terms (idf-weighted) that it contains. When even
the best sentence scores below the abstention threshold, the assistant says the articles don't
contain the answer rather than quoting something merely related; it abstains too when the
question names something (a capitalised name, a number) that no retrieved passage contains, or
asks how many / when / who / where and no phrase of that kind lies near its terms.

Invariants: `document.text[c.start:c.end] == c.quote` for every citation, markers [1]..[n] in
citation order, and `document.text[short.start:short.end] == short.text` inside citation n.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rag.answer import short_answer as short
from rag.models import AnswerDraft, Citation, Passage, ShortAnswer
from rag.retrieve.lexical import tokenize, words
from rag.retrieve.retrieval import Snapshot

LEXICAL_WEIGHT = 0.5  # how much full coverage of the question's terms adds to the cosine
TYPE_PENALTY = 0.3  # a sentence without the kind of fact the question asks for
ECHO_PENALTY = 0.2  # a sentence that only repeats the question's own words
CLOSE_MARGIN = 0.06  # extra sentences must score within this of the best one
SHORT_POOL = 5  # the short answer is sought in the chosen sentences and the best few others
ABSTAIN_TEXT = "The articles don't contain an answer to this question."

_SPACES = re.compile(r"\s+")
_MONTHS = (
    "january february march april may june july august september october november december "
    "jan feb mar apr jun jul aug sep sept oct nov dec"
)
_DAYS = "monday tuesday wednesday thursday friday saturday sunday today yesterday tomorrow"
_NUMBER_WORDS = (
    "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety "
    "hundred hundreds thousand thousands million millions billion dozen dozens half"
)
_ASKS_NUMBER = re.compile(
    r"\bhow (many|much|long|old|far|big|large|often)\b|\bwhat (number|percentage|amount)\b", re.I
)
_ASKS_DATE = re.compile(
    r"\bwhen\b|\b(what|which) (year|date|day|month|time)\b|\bin what year\b", re.I
)
_ASKS_PERSON = re.compile(
    r"^\W*(who|whom|whose)\b|\bwho (is|was|are|were|did|does|heads|chairs)\b", re.I
)
_DIGITS = re.compile(r"\d")
_YEAR = re.compile(r"\b(1[5-9]|20)\d\d\b")
_NAME = re.compile(r"\b[A-Z][\w’'-]*[a-z][\w’'-]*\b")


@dataclass(frozen=True, slots=True)
class AnswerType:
    """What kind of fact a question asks for, worked out once per question."""

    kind: str | None  # "number", "date", "person" or None (anything goes)
    words: frozenset[str]  # the question's own words: a fact it already states doesn't count
    lower: str


def answer_type(question: str) -> AnswerType:
    if _ASKS_NUMBER.search(question):
        kind: str | None = "number"
    elif _ASKS_DATE.search(question):
        kind = "date"
    elif _ASKS_PERSON.search(question):
        kind = "person"
    else:
        kind = None
    return AnswerType(kind, frozenset(words(question)), question.lower())


_NUMBER_VOCAB = frozenset(_NUMBER_WORDS.split())
_DATE_VOCAB = frozenset(_MONTHS.split()) | frozenset(_DAYS.split())


def answer_type_found(wanted: AnswerType, text: str) -> bool:
    """Whether `text` holds a fact of the kind the question asks for, beyond the question itself.

    "How many…" needs a number, "when…" a date, "who…" a name that the question doesn't already
    contain. Plausible unanswerable questions usually fail this: the articles discuss the same
    people and events but never state the requested number, date or name.
    """
    if wanted.kind is None:
        return True
    if wanted.kind == "person":
        return any(m.group(0).lower() not in wanted.lower for m in _NAME.finditer(text[1:]))
    new = [w for w in words(text) if w not in wanted.words]
    if wanted.kind == "number":
        return any(_DIGITS.search(w) or w in _NUMBER_VOCAB for w in new)
    return any(w in _DATE_VOCAB or _YEAR.fullmatch(w) for w in new)


def novelty(question_terms: set[str], terms: Sequence[str]) -> float:
    """Share of the sentence's content terms that the question doesn't already contain."""
    return sum(t not in question_terms for t in terms) / len(terms) if terms else 0.0


@dataclass(frozen=True, slots=True)
class ScoredSentence:
    doc_id: str
    start: int
    end: int
    semantic: float
    lexical: float
    score: float
    passage_rank: int


def lexical_coverage(idf: dict[str, float], terms: Sequence[str]) -> float:
    """idf-weighted share of the question's distinct terms (`idf`: each one's weight) present
    in a sentence (0..1)."""
    total = sum(idf.values())
    if not total:
        return 0.0
    return sum(idf[t] for t in idf.keys() & set(terms)) / total


def score_sentences(
    snap: Snapshot, question: str, qvec: np.ndarray | None, passages: list[Passage]
) -> list[ScoredSentence]:
    """Every indexed sentence inside the passages, scored against the question, best first."""
    terms = tokenize(question)
    term_set = set(terms)
    idf = {t: snap.term_idf(t) for t in term_set}
    wanted = answer_type(question)
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
        text = doc.text[s:e]
        s_terms = snap.sentence_terms(r)
        lex = lexical_coverage(idf, s_terms)
        score = sem + LEXICAL_WEIGHT * lex
        if not answer_type_found(wanted, text):
            score -= TYPE_PENALTY
        if novelty(term_set, s_terms) < 0.25:
            score -= ECHO_PENALTY
        out.append(ScoredSentence(doc.id, s, e, sem, lex, score, rank))
    out.sort(key=lambda x: (-x.score, x.passage_rank, x.doc_id, x.start))
    return out


def sentence_key(snap: Snapshot, s: ScoredSentence) -> str:
    """A sentence's words, whitespace and case folded: the same sentence in two documents (a
    quote two stories share) is cited once."""
    return _SPACES.sub(" ", snap.docs[s.doc_id].text[s.start : s.end]).strip().casefold()


def pick_sentences(
    snap: Snapshot, scored: list[ScoredSentence], limit: int
) -> list[ScoredSentence]:
    """The best sentence plus close runners-up that add something (never the same words
    twice), best first."""
    if not scored:
        return []
    best = scored[0]
    chosen = [best]
    seen_text = {sentence_key(snap, best)}
    for s in scored[1:]:
        if len(chosen) >= limit or s.score < best.score - CLOSE_MARGIN:
            break
        key = sentence_key(snap, s)
        if key not in seen_text:
            chosen.append(s)
            seen_text.add(key)
    return chosen


def extractive_answer(
    snap: Snapshot,
    question: str,
    qvec: np.ndarray | None,
    passages: list[Passage],
    *,
    max_sentences: int,
    threshold: float,
    short_answers: bool = True,
    scored: list[ScoredSentence] | None = None,
) -> AnswerDraft:
    """The best sentences, best first, with the short answer's sentence leading; or abstain.

    Abstains when the best sentence scores below `threshold`, when a name or number of the
    question occurs in no retrieved passage, or when a typed question (who, when, how many,
    where) has no candidate of its type near its terms.
    """
    if scored is None:  # the reader's answer passes the sentences it has scored already
        scored = score_sentences(snap, question, qvec, passages)
    confidence = round(scored[0].score if scored else 0.0, 4)
    if not scored or confidence < threshold:
        return AnswerDraft(ABSTAIN_TEXT, [], abstained=True, confidence=confidence)
    info = short.analyse(question)
    if short.missing_terms(info, [p.text for p in passages]):
        return AnswerDraft(ABSTAIN_TEXT, [], abstained=True, confidence=confidence)
    chosen = pick_sentences(snap, scored, max_sentences)
    if not short_answers:  # RAG_READER=off: the best sentences, no short answer
        citations, text = cite(snap, chosen)
        return AnswerDraft(text, citations, abstained=False, confidence=confidence)
    docs = {s.doc_id for s in chosen}  # runners-up from a document not cited don't lead
    pool = chosen + [s for s in scored[:SHORT_POOL] if s not in chosen and s.doc_id in docs]
    found = short.best_candidate(
        [(s.start, snap.docs[s.doc_id].text[s.start : s.end], s.score) for s in pool],
        info,
        snap.term_idf,
    )
    if not short.answers_type(info, found):
        return AnswerDraft(ABSTAIN_TEXT, [], abstained=True, confidence=confidence)
    if found is not None:  # the sentence holding the short answer leads
        lead = pool[found.sentence]
        lead_key = sentence_key(snap, lead)
        rest = [s for s in chosen if sentence_key(snap, s) != lead_key]
        chosen = [lead, *rest[: max_sentences - 1]]
    citations, text = cite(snap, chosen)
    short_answer = None
    if found is not None:
        c = found.candidate
        short_answer = ShortAnswer(
            text=c.text, doc_id=chosen[0].doc_id, start=c.start, end=c.end, n=1, score=c.score
        )
    return AnswerDraft(
        text, citations, abstained=False, confidence=confidence, short_answer=short_answer
    )


def cite(snap: Snapshot, chosen: Sequence[ScoredSentence]) -> tuple[list[Citation], str]:
    """Citations [1]..[n] of the chosen sentences and the answer text quoting them in order."""
    citations = [cite_one(snap, n, s) for n, s in enumerate(chosen, start=1)]
    return citations, " ".join(f"{_SPACES.sub(' ', c.quote)} [{c.n}]" for c in citations)


def cite_one(snap: Snapshot, n: int, s: ScoredSentence, *, earlier: bool = False) -> Citation:
    """Citation `[n]` quoting sentence `s` of its document (`earlier`: an older claim shown
    for context)."""
    doc = snap.docs[s.doc_id]
    return Citation.of(
        doc,
        n=n,
        start=s.start,
        end=s.end,
        quote=doc.text[s.start : s.end],
        score=round(s.score, 4),
        earlier=earlier,
    )
