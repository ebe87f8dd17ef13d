"""The steps of one question over one index snapshot, after `rag.assistant.Assistant` has
resolved it: its time scope, retrieval within it, the extractive answer, and timelines.

    scope = scope_of(settings, snap, q)                        (rag.temporal.time_scope)
    passages = retrieve_in(settings, snap, q, qvec, scope)     (rag.retrieve.retrieval)
    draft = extractive(settings, snap, question, qvec, passages, reader)
    found = timeline_of(settings, snap, q, qvec)               (rag.temporal.timeline)

Invariants:
- Plain functions of the settings and one snapshot: nothing here holds state, so a request that
  started on a snapshot finishes on it, whatever is swapped in meanwhile.
- `as_of` is the query's, else `RAG_AS_OF`, else today; every step of a request uses the one
  scope computed from it, and a search, an answer or a timeline reports it (`as_of`, `period`).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from rag.answer.answering import ScoredSentence, extractive_answer
from rag.models import AnswerDraft, Passage, SearchQuery
from rag.retrieve.retrieval import Snapshot, retrieve
from rag.settings import Settings
from rag.temporal.time_scope import TimeScope, time_scope

if TYPE_CHECKING:
    from rag.reader.runtime import Reader
    from rag.temporal.timeline import Timeline


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def scope_of(settings: Settings, snap: Snapshot, q: SearchQuery) -> TimeScope:
    """What `q` may use by date: its as_of day and the period it names
    (`rag.temporal.time_scope`)."""
    as_of = q.as_of or settings.as_of or dt.date.today()
    return time_scope(snap, q.question, as_of, settings.prefer_newest)


def retrieve_in(
    settings: Settings,
    snap: Snapshot,
    q: SearchQuery,
    qvec: np.ndarray | None,
    scope: TimeScope | None = None,
) -> list[Passage]:
    """The passages for `q` within its time scope (computed when not given)."""
    s = settings
    scope = scope or scope_of(settings, snap, q)
    return retrieve(
        snap,
        q.question,
        qvec,
        mode=q.mode or s.mode,
        top_k=q.top_k or s.top_k,
        filters=q.filters,
        rrf_k=s.rrf_k,
        weights=(s.dense_weight, s.bm25_weight),
        mmr_lambda=s.mmr_lambda,
        allow=scope.allow,
        keep=scope.keep,
    )


def extractive(
    settings: Settings,
    snap: Snapshot,
    question: str,
    qvec: np.ndarray | None,
    passages: list[Passage],
    reader: Callable[[], Reader],
) -> AnswerDraft:
    """The extractive answer: the reader's (`RAG_READER=model`: `reader()` loads it) or the
    rules'."""
    s = settings

    def rules(short_answers: bool, scored: list[ScoredSentence] | None = None) -> AnswerDraft:
        return extractive_answer(
            snap,
            question,
            qvec,
            passages,
            max_sentences=s.answer_sentences,
            threshold=s.abstain_threshold,
            short_answers=short_answers,
            scored=scored,
        )

    if s.reader != "model":
        return rules(short_answers=s.reader == "rules")
    from rag.reader.answer import ReaderOptions, reader_answer

    options = ReaderOptions(s.answer_sentences, s.reader_windows, s.reader_context,
                            s.reader_min_confidence)
    return reader_answer(snap, question, qvec, passages, reader(), options,
                         rules_abstain=lambda scored: rules(True, scored).abstained)


def timeline_of(
    settings: Settings,
    snap: Snapshot,
    q: SearchQuery,
    qvec: np.ndarray | None,
    *,
    started: float,
) -> Timeline:
    """The timeline of a resolved query within its time scope (`rag.temporal.timeline`), with its
    `as_of`, `period` and timings (`started`: when the request began, `time.perf_counter()`;
    what came before now counts as embedding)."""
    from rag.temporal.timeline import build_timeline

    t1 = time.perf_counter()
    scope = scope_of(settings, snap, q)
    passages = retrieve_in(settings, snap, q, qvec, scope)
    t2 = time.perf_counter()
    found = build_timeline(
        snap, q.question, qvec, passages, mode=q.mode, filters=q.filters,
        floor=settings.abstain_threshold,
    )  # fmt: skip
    t3 = time.perf_counter()
    timings = {"embed": t1 - started, "retrieve": t2 - t1, "timeline": t3 - t2}
    timings["total"] = t3 - started
    update = {**scope.fields(answer=False), "timings": {k: ms(v) for k, v in timings.items()}}
    return found.model_copy(update=update)
