"""LLM answers in time over the dated corpus (eval/dated), against a real HTTP server speaking the
OpenAI protocol (tests/fake_openai): the newest articles first with "As of <day>:" streamed
before the model's text and older claims marked earlier, periods applied before the model is
asked, and the role a "who is" question asks about as evidence for abstaining. Real index, real
model; every quote is checked against its document."""

from __future__ import annotations

import datetime as dt
import re

from rag.answer.roles import asked_role
from rag.answer.short_answer import analyse, missing_terms
from rag.assistant import Assistant
from rag.events import DeltaEvent, DoneEvent
from rag.models import Query
from rag.settings import Settings
from rag.temporal.time_llm import LlmPlan, plan_llm
from rag.temporal.time_scope import InScope, dates_of, time_scope
from tests import fake_openai
from tests.conftest import ROOT
from tests.fake_openai import FakeOpenAI

fake_llm = fake_openai.fake_llm  # the fixture, made visible to pytest in this module

DATED = ROOT / "eval" / "dated" / "articles"
SPEAKER_NOW = "Who is the Speaker of Kestria's National Assembly now?"
JUNE_2024 = dt.date(2024, 6, 1)


def _llm(dated: Assistant, base_url: str) -> Assistant:
    settings: Settings = dated.settings.with_overrides(
        llm_base_url=base_url, llm_model="fake-model", llm_timeout=5.0
    )
    return Assistant(settings, dated.snapshot, dated.embedder)


def _day(dated: Assistant, doc_id: str) -> dt.date | None:
    return dates_of(dated.snapshot).published[doc_id]


def _plan(dated: Assistant, question: str, as_of: dt.date) -> LlmPlan:
    snap = dated.snapshot
    qvec = dated.embed([question])[0]
    passages = dated.search(question, query_vector=qvec, as_of=as_of).passages
    return plan_llm(InScope(snap, time_scope(snap, question, as_of), question, qvec, passages))


def test_an_llm_answer_about_the_present_is_dated_and_marks_older_claims(
    dated: Assistant, fake_llm: FakeOpenAI
) -> None:
    plan = _plan(dated, SPEAKER_NOW, JUNE_2024)
    assert plan.newest is not None and plan.prefix == f"As of {plan.newest}: "
    days = [_day(dated, p.doc_id) for p in plan.passages]
    newer = [d is None or d >= plan.newest for d in days]
    assert newer == sorted(newer, reverse=True) and not all(newer)  # newest first, older after
    last = len(plan.passages)
    fake_llm.answer(f"Anna Erikki is the Speaker [1]. Earlier, Ilse Brandt held the post [{last}].")

    events = list(_llm(dated, fake_llm.base_url).stream_ask(
        Query(question=SPEAKER_NOW, answerer="llm", as_of=JUNE_2024)))
    deltas = [e.text for e in events if isinstance(e, DeltaEvent)]
    done = events[-1]
    assert isinstance(done, DoneEvent)
    answer = done.answer
    assert not answer.fallback and deltas[0] == plan.prefix
    assert answer.answer == "".join(deltas).strip() and answer.answer.startswith(plan.prefix)
    lead, older = answer.citations
    assert not lead.earlier and (_day(dated, lead.doc_id) or plan.newest) >= plan.newest
    assert older.earlier and (_day(dated, older.doc_id) or plan.newest) < plan.newest
    assert [c.n for c in answer.citations] == [1, 2]
    assert re.findall(r"\[(\d+)\]", answer.answer) == ["1", "2"]
    for c in answer.citations:
        doc = dated.document(c.doc_id)
        assert doc is not None and doc.text[c.start : c.end] == c.quote
    (req,) = fake_llm.requests
    user = req.message("user")
    assert f"The newest passages are dated {plan.newest}" in user
    assert "Today is 2024-06-01" in user


def test_an_llm_question_without_a_present_tense_gets_no_note(
    dated: Assistant, fake_llm: FakeOpenAI
) -> None:
    question = "Who was elected Speaker of Kestria's National Assembly in March 2022?"
    assert _plan(dated, question, JUNE_2024).newest is None
    fake_llm.answer("Ilse Brandt [1].")
    answer = _llm(dated, fake_llm.base_url).ask(question, answerer="llm", as_of=JUNE_2024)
    assert answer.answer == "Ilse Brandt [1]." and not answer.citations[0].earlier
    assert "newest passages" not in fake_llm.requests[0].message("user")


def test_a_period_without_articles_is_refused_before_the_llm_is_asked(
    dated: Assistant, fake_llm: FakeOpenAI
) -> None:
    question = "Who was the Speaker of Kestria's National Assembly in 2010?"
    answer = _llm(dated, fake_llm.base_url).ask(question, answerer="llm", as_of=JUNE_2024)
    assert answer.abstained and answer.answerer == "llm" and "2010" in answer.answer
    assert not fake_llm.requests


def test_the_role_a_who_question_asks_about_is_evidence() -> None:
    assert asked_role("Who is Kestria's foreign minister?") == "foreign minister"
    assert asked_role("Who is the current chairman of the Arab Parliament?") == "chairman"
    assert asked_role("Who was the president of Iran in 2020?") == "president"
    assert asked_role("Who won the election?") is None
    assert asked_role("Who is the Speaker of the Assembly?") is None  # a name: a key term already
    info = analyse("Who is Kestria's foreign minister?")
    assert info.key_terms == ("Kestria", "foreign minister")
    assert missing_terms(info, ["Kestria's Speaker Ilse Brandt."]) == ["foreign minister"]
    assert missing_terms(info, ["Kestria's minister for foreign affairs, Anja Lind."]) == []


def test_no_article_before_as_of_names_the_role_so_the_answer_abstains(dated: Assistant) -> None:
    question = "Who is Kestria's foreign minister?"
    before = dated.ask(question, as_of=dt.date(2023, 1, 1))
    assert before.abstained and not before.citations
    after = dated.ask(question, as_of=JUNE_2024)
    assert not after.abstained and "Kell" in after.citations[0].quote
