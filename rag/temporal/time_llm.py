"""LLM answers in time: the same period, "as of" and earlier-claim rules as the extractive
answer (`rag.temporal.time_answer`), decided before the model writes a word.

    plan = plan_llm(asked: InScope)                           → LlmPlan
    plan.refusal            an abstention when nothing in the scope may be used (no LLM call)
    plan.passages           what the LLM is given: the period's passages; newest first when the
                            best claims come from articles of different days
    plan.prefix             "As of <day>: ", streamed before the LLM's first piece (or "")
    plan.note               appended to the prompt: which passages are newest, and that an
                            older claim is mentioned only as earlier, with its date
    plan.finish(snap, draft) → the LLM's draft with the prefix and earlier claims marked
    stream_llm(client, asked, extractive) → the delta events of all this, returning the draft

Invariants:
- The LLM's own text is never edited: the final answer is `prefix + draft.answer` (an
  abstention too), so the stream's pieces still concatenate to it; an extractive fallback
  (already shaped in time by the caller) is returned as it is.
- A citation is marked `earlier` when its article was published before the plan's newest day
  and belongs to none of the stories cited from that day on; citation numbers and order are
  the LLM's (its text holds them).
- "As of <day>" only when the best claims span two or more known publication days, the day
  being the newest of them — the same test the extractive answer uses
  (`rag.temporal.time_answer.newest_day`).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rag.answer.answering import score_sentences
from rag.events import DeltaEvent, StreamEvent
from rag.models import AnswerDraft, Passage
from rag.retrieve.date_table import dates_of
from rag.temporal.time_answer import newest_day, refusal, replace_draft, with_days

if TYPE_CHECKING:
    import datetime as dt

    from rag.llm import LlmClient
    from rag.retrieve.retrieval import Snapshot
    from rag.temporal.time_scope import InScope

NOTE = (
    "\n\nThe passages disagree over time. Today is {as_of}. The newest passages are dated "
    "{newest}: answer from them. Mention an older passage's claim only as an earlier one, "
    "with its date. Your answer will be shown after \"As of {newest}:\", so do not repeat that."
)


@dataclass(frozen=True, slots=True)
class LlmPlan:
    """What the LLM is given and how its answer is dated (see the module's invariants)."""

    passages: list[Passage]
    newest: dt.date | None = None
    as_of: dt.date | None = None
    refusal: AnswerDraft | None = None

    @property
    def prefix(self) -> str:
        return f"As of {self.newest}: " if self.newest is not None else ""

    @property
    def note(self) -> str:
        if self.newest is None:
            return ""
        return NOTE.format(as_of=self.as_of, newest=self.newest)

    def finish(self, snap: Snapshot, draft: AnswerDraft) -> AnswerDraft:
        """The LLM's draft dated: the prefix before its text, older claims marked earlier."""
        if self.newest is None or draft.fallback:
            return draft
        if draft.abstained:  # the prefix was streamed: "As of <day>: The articles don't …"
            return replace_draft(draft, answer=self.prefix + draft.answer)
        table = dates_of(snap)
        newest = self.newest
        stories = {
            snap.canonical_of(c.doc_id)
            for c in draft.citations
            if (day := table.published.get(c.doc_id)) is not None and day >= newest
        }

        def older(doc_id: str) -> bool:
            day = table.published.get(doc_id)
            return day is not None and day < newest and snap.canonical_of(doc_id) not in stories

        cites = [c.model_copy(update={"earlier": True}) if older(c.doc_id) else c
                 for c in draft.citations]
        return replace_draft(draft, citations=cites, answer=self.prefix + draft.answer)


def plan_llm(asked: InScope) -> LlmPlan:
    """The plan for an LLM answer to the question within its scope."""
    snap, scope = asked.snap, asked.scope
    passages = asked.usable()
    if isinstance(passages, str):
        return LlmPlan([], refusal=AnswerDraft(refusal(passages), [], abstained=True,
                                               answerer="llm"))
    if not scope.intent.prefer_newest:
        return LlmPlan(passages)
    table = dates_of(snap)
    newest = newest_day(table, score_sentences(snap, asked.question, asked.qvec, passages))
    if newest is None:
        return LlmPlan(passages)

    def newer(p: Passage) -> bool:
        day = table.published.get(p.doc_id)
        return day is None or day >= newest

    ordered = [p for p in passages if newer(p)] + [p for p in passages if not newer(p)]
    ranked = [p.model_copy(update={"rank": n}) for n, p in enumerate(ordered, start=1)]
    return LlmPlan(ranked, newest=newest, as_of=scope.as_of)


def stream_llm(
    client: LlmClient, asked: InScope, extractive: Callable[[], AnswerDraft]
) -> Generator[StreamEvent, None, AnswerDraft]:
    """The LLM's answer as delta events; returns its draft, dated like an extractive one.
    `extractive` (already shaped in time) is the fallback, returned as it is."""
    from rag.llm import stream_answer

    plan = plan_llm(asked)
    if plan.refusal is not None:
        yield DeltaEvent(plan.refusal.answer)
        return plan.refusal
    if plan.prefix:
        yield DeltaEvent(plan.prefix)
    draft: AnswerDraft | None = None
    for item in stream_answer(client, asked.question, plan.passages, extractive, note=plan.note):
        if isinstance(item, str):
            yield DeltaEvent(item)
        else:
            draft = item
    assert draft is not None
    return draft if draft.fallback else with_days(asked.snap, plan.finish(asked.snap, draft))
