"""Extractive answers with the reader (`RAG_READER=model`): the reader finds the short answer
among the best sentences and decides whether the articles answer at all.

The retrieved passages' sentences are scored as for the rule-based answer
(`rag.answer.answering.score_sentences`); the best `windows` distinct sentences are read by the
reader as one batch. Its best span across them, by no-answer margin (span score − `[CLS]`
score), decides:

- the span is the short answer when the calibrated probability that it is right
  (`rag.reader.decision`: margin, span probability, lead over the other windows' spans, span
  length, whether it lies in the best-scored sentence) reaches the `decision` threshold of
  reader.json; its sentence is cited first, followed by the best other sentences;
- below it, the rule-based evidence check (`rag.answer.answering`: evidence score, missing
  names, numbers and offices, the kind of fact asked for) may refuse: a refusal for a missing
  name, number or office stands; any other is overruled by a margin above 0 (a span likelier
  than "no answer"). When none stands, the reader's sentence leads, without a short answer;
- no span at all → abstain.

Why the rules still have a say: calibrated on the validation articles alone, abstaining on the
reader's margin (−4.5) refused 33 % of unanswerable questions at 4.8 % false abstentions, but
out of that domain it refused 13 % (SQuAD eval articles) and 22 % (the news seeds) of
answerable questions. The rules transfer better but refuse some questions the reader answers
confidently (6.6 % false abstentions on validation); overruled as above they refuse 19.4 % of
the unanswerable at 3.7 % false abstentions there (docs/reader.md).

`confidence` is that calibrated probability (for a model without a `decision`: the logistic of
the margin, shown from margin `thresholds.show`).
Invariants as in `rag.answer.answering`: `document.text[c.start:c.end] == c.quote` for every
citation and `document.text[short.start:short.end] == short.text` inside citation 1.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from rag.answer import short_answer as short
from rag.answer.answering import (
    ABSTAIN_TEXT,
    ScoredSentence,
    cite,
    pick_sentences,
    score_sentences,
    sentence_key,
)
from rag.models import AnswerDraft, Passage, ShortAnswer
from rag.reader.decision import features
from rag.reader.runtime import Reader, WindowSpan
from rag.retrieve.retrieval import Snapshot


@dataclass(frozen=True, slots=True)
class Window:
    """What the reader reads: sentences `first..last` (rows of the sentence table) of a document,
    around one of the best sentences."""

    doc_id: str
    first: int
    last: int
    sentence: ScoredSentence  # the best sentence it was built around


def windows_of(snap: Snapshot, pool: list[ScoredSentence], context: int) -> list[Window]:
    """Each pooled sentence widened by `context` sentences a side; a window overlapping an
    earlier (better) one of the same document is left out."""
    sent = snap.data.sentences
    out: list[Window] = []
    for s in pool:
        lo, hi = snap.doc_sentences[s.doc_id]
        row = lo + int(np.searchsorted(sent.starts[lo:hi], s.start))
        w = Window(s.doc_id, max(lo, row - context), min(hi - 1, row + context), s)
        if not any(o.doc_id == w.doc_id and o.first <= w.last and w.first <= o.last for o in out):
            out.append(w)
    return out


@dataclass(frozen=True, slots=True)
class Reading:
    """What the reader read for one question, and what it found: `spans` holds the best span
    of each window (`span.window` indexes `windows` and `starts`)."""

    scored: list[ScoredSentence]  # the passages' sentences, best first
    windows: list[Window]
    starts: list[int]  # each window's start offset in its document
    spans: list[WindowSpan]

    def best(self) -> WindowSpan | None:
        return max(self.spans, key=lambda w: (w.margin, -w.window), default=None)

    def offsets(self, span: WindowSpan) -> tuple[str, int, int]:
        """(doc_id, start, end) of a span in its document."""
        a = self.starts[span.window]
        return self.windows[span.window].doc_id, a + span.start, a + span.end


def read(
    snap: Snapshot,
    question: str,
    qvec: np.ndarray | None,
    passages: list[Passage],
    reader: Reader,
    *,
    windows: int,
    context: int = 0,
) -> Reading:
    """Score the passages' sentences and read the best `windows` distinct ones in one batch."""
    scored = score_sentences(snap, question, qvec, passages)
    pool, seen = [], set()
    for s in scored:
        key = sentence_key(snap, s)
        if key not in seen:
            seen.add(key)
            pool.append(s)
        if len(pool) == windows:
            break
    sent = snap.data.sentences
    wins = windows_of(snap, pool, context)
    starts = [int(sent.starts[w.first]) for w in wins]
    texts = [
        snap.docs[w.doc_id].text[a : int(sent.ends[w.last])]
        for w, a in zip(wins, starts, strict=True)
    ]
    return Reading(scored, wins, starts, reader.read(question, texts))


@dataclass(frozen=True, slots=True)
class ReaderOptions:
    """How an answer uses the reader (from `ReaderSettings` and `answer_sentences`)."""

    max_sentences: int  # sentences cited
    windows: int  # best sentences read (RAG_READER_WINDOWS)
    context: int = 0  # sentences also read on each side (RAG_READER_CONTEXT)
    min_confidence: float | None = None  # the show bar, if set (RAG_READER_MIN_CONFIDENCE)


def reader_answer(
    snap: Snapshot,
    question: str,
    qvec: np.ndarray | None,
    passages: list[Passage],
    reader: Reader,
    options: ReaderOptions,
    rules_abstain: Callable[[list[ScoredSentence]], bool],
) -> AnswerDraft:
    """The reader's answer: its short answer's sentence first, or abstain.

    `rules_abstain(scored)` is the rule-based evidence check (`rag.answer.answering`, reusing these
    scored sentences); it is asked only when `rules_stand` lets its refusal stand (see the
    module docstring for why)."""
    reading = read(snap, question, qvec, passages, reader, windows=options.windows,
                   context=options.context)
    best = reading.best()
    if best is None:
        return AnswerDraft(ABSTAIN_TEXT, [], abstained=True, confidence=0.0)
    doc_id, start, end = reading.offsets(best)
    span_text = snap.docs[doc_id].text[start:end]
    show, confidence = judge(reader, reading, best, span_text, options.min_confidence)
    if rules_stand(question, passages, best.margin, show) and rules_abstain(reading.scored):
        return AnswerDraft(ABSTAIN_TEXT, [], abstained=True, confidence=confidence)
    lead = _lead(snap, reading.windows[best.window], start, end)
    lead_key = sentence_key(snap, lead)
    rest = [s for s in pick_sentences(snap, reading.scored, options.max_sentences)
            if sentence_key(snap, s) != lead_key]
    chosen = [lead, *rest][:options.max_sentences]
    citations, text = cite(snap, chosen)
    short_answer = None
    if show:
        short_answer = ShortAnswer(text=span_text, doc_id=doc_id, start=start, end=end, n=1,
                                   score=round(best.margin, 4))
    return AnswerDraft(
        text, citations, abstained=False, confidence=confidence, short_answer=short_answer
    )


def rules_stand(question: str, passages: list[Passage], margin: float, show: bool) -> bool:
    """Whether the rules' refusal stands against the reader: a name, number or office of the
    question in no passage is overruled only by a shown span; any other refusal by a margin
    above 0 (a span likelier than "no answer")."""
    if margin <= 0:
        return True
    return not show and bool(short.missing_terms(short.analyse(question),
                                                 [p.text for p in passages]))


def judge(reader: Reader, reading: Reading, span: WindowSpan, text: str,
          min_confidence: float | None = None) -> tuple[bool, float]:
    """(show `span` as the short answer?, the answer's confidence): the calibrated probability
    that the span is right (`rag.reader.decision`), or — for a model shipped without a
    decision — the logistic of its margin against the `show` margin. `min_confidence`, when
    set, is the bar for either instead of the model's own."""
    if reader.show_model is None:
        p = 1 / (1 + math.exp(min(50.0, -span.margin)))
        show = span.margin >= reader.show_threshold
    else:
        p = reader.show_model.probability(features(span, reading.spans, text))
        show = p >= reader.show_model.threshold
    if min_confidence is not None:
        show = p >= min_confidence
    return show, round(p, 4)


def _lead(snap: Snapshot, win: Window, start: int, end: int) -> ScoredSentence:
    """The sentence(s) of the window holding [start, end): cited first."""
    sent = snap.data.sentences
    rows = [r for r in range(win.first, win.last + 1)
            if int(sent.starts[r]) < end and int(sent.ends[r]) > start]
    a, b = int(sent.starts[rows[0]]), int(sent.ends[rows[-1]])
    base = win.sentence
    if (a, b) == (base.start, base.end):
        return base
    return replace(base, start=a, end=b)
