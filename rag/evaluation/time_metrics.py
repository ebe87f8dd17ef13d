"""Answer metrics of `rag eval` for dated questions (issue 24): registered in `registry.METRICS`.

Each is `score(answer, question)` → a value, or None where it does not apply (a question
without the tag, a story not retrieved): answered from the right article in time (`in_time`,
for the tags `current` and `period`), the period read as the question file lists it, copies of
a story folded, and two citations quoting the same words.

Invariants: pure functions of the `Answer` and the gold `EvalQuestion`; like `metrics`, this
module imports only the standard library and `metrics` at run time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from rag.evaluation.metrics import any_occurs, normalise_answer

if TYPE_CHECKING:
    from rag.evaluation.corpora import EvalQuestion
    from rag.models import Answer


def in_time(tag: str) -> Callable[[Answer, EvalQuestion], bool | None]:
    """Right on a question tagged `tag` (None on others): an unanswerable one abstained on; an
    answerable one led by a citation of one of its listed articles (or of a copy of one) whose
    quote, with its resolved days, holds an accepted answer — for a "current" question, the
    listed articles are those that hold the answer as of its day, so this is "answered from
    the newest article"."""

    def right(answer: Answer, q: EvalQuestion) -> bool | None:
        if tag not in q.tags:
            return None
        if not (q.answerable and q.answers):
            return answer.abstained
        if answer.abstained or not answer.citations:
            return False
        lead = answer.citations[0]
        docs = {lead.doc_id, *(a.doc_id for a in lead.also_in)}
        text = " ".join([lead.quote, *(r.date for r in lead.resolved_dates)])
        return bool(docs & set(q.doc_ids)) and any_occurs(q.answers, text)

    return right


def period_parsed(answer: Answer, q: EvalQuestion) -> bool | None:
    """The period the answer used equals the question's listed one (None: none listed)."""
    if q.period is None:
        return None
    got = answer.period
    return got is not None and (got.since, got.until) == q.period


def duplicate_citations(answer: Answer, q: EvalQuestion) -> float:
    """1 when two citations of the answer quote the same words (whitespace, case and
    punctuation folded; a story's copies count as the same text), else 0."""
    seen: set[str] = set()
    for c in answer.citations:
        key = normalise_answer(c.quote)
        if key in seen:
            return 1.0
        seen.add(key)
    return 0.0


def copies_folded(answer: Answer, q: EvalQuestion) -> bool | None:
    """On a question tagged copies whose story was retrieved: no passage is of a document
    another passage lists as its copy, and a passage of the story lists its copies."""
    if "copies" not in q.tags:
        return None
    wanted = set(q.doc_ids)
    story = [p for p in answer.passages if p.doc_id in wanted]
    if not story:
        return None
    shown = {p.doc_id for p in answer.passages}
    listed = {a.doc_id for p in answer.passages for a in p.also_in}
    return not (shown & listed) and any(a.doc_id in wanted for p in story for a in p.also_in)
