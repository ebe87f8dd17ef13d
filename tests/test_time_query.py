"""Time in questions (`rag.temporal.time_query`): the period a question names and whether it
prefers the
newest articles, for a fixed as_of; and the times article text states. Pure, no index."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from rag.temporal.time_query import Period, time_intent, time_mentions

AS_OF = dt.date(2024, 3, 20)  # a Wednesday
D = dt.date

PERIODS: list[tuple[str, Period | None]] = [
    ("Who was the Speaker in 2021?", Period(D(2021, 1, 1), D(2021, 12, 31))),
    ("What happened during 2019?", Period(D(2019, 1, 1), D(2019, 12, 31))),
    ("What happened in February?", Period(D(2024, 2, 1), D(2024, 2, 29))),
    ("What happened in June?", Period(D(2023, 6, 1), D(2023, 6, 30))),  # the last June begun
    ("What did Kestria do in August 2023?", Period(D(2023, 8, 1), D(2023, 8, 31))),
    ("What happened on August 3, 2023?", Period(D(2023, 8, 3), D(2023, 8, 3))),
    ("What happened on 3 August?", Period(D(2023, 8, 3), D(2023, 8, 3))),
    ("What happened on March 3?", Period(D(2024, 3, 3), D(2024, 3, 3))),
    ("What happened last week?", Period(D(2024, 3, 11), D(2024, 3, 17))),
    ("What happened this week?", Period(D(2024, 3, 18), D(2024, 3, 24))),
    ("What changed last month?", Period(D(2024, 2, 1), D(2024, 2, 29))),
    ("Who won last year?", Period(D(2023, 1, 1), D(2023, 12, 31))),
    ("What happened yesterday?", Period(D(2024, 3, 19), D(2024, 3, 19))),
    ("What happened 3 years ago?", Period(D(2021, 1, 1), D(2021, 12, 31))),
    ("What happened two days ago?", Period(D(2024, 3, 18), D(2024, 3, 18))),
    ("What happened in the past 2 weeks?", Period(D(2024, 3, 6), D(2024, 3, 20))),
    ("Who called last Thursday?", Period(D(2024, 3, 14), D(2024, 3, 14))),
    ("What changed since June?", Period(D(2023, 6, 1), None)),
    ("What changed since 2022?", Period(D(2022, 1, 1), None)),
    ("Who led before 2020?", Period(None, D(2019, 12, 31))),
    ("Who led before March 2024?", Period(None, D(2024, 2, 29))),
    ("Who led after March 2023?", Period(D(2023, 4, 1), None)),
    ("Who led until 2022?", Period(None, D(2022, 12, 31))),
    ("Who led between 2020 and 2022?", Period(D(2020, 1, 1), D(2022, 12, 31))),
    ("Who led from 2019 to 2021?", Period(D(2019, 1, 1), D(2021, 12, 31))),
    ("Who led as of June 2023?", Period(None, D(2023, 6, 30))),
    ("Who was Speaker before the 2024 parliamentary election?", Period(None, D(2023, 12, 31))),
    ("Who was minister before the new government of March 2024?", Period(None, D(2024, 2, 29))),
    ("What happened after the summit of May 2023?", Period(D(2023, 5, 1), None)),
    ("Who was the Speaker in 2023 before August?", Period(D(2023, 1, 1), D(2023, 7, 31))),
    # no period: a bare year or month, a verb "may", a statement before the question
    ("Which 2019 summit decided to expand the network?", None),
    ("Who won the 2024 parliamentary election?", None),
    ("Who may attend the summit?", None),
    ("The network was inaugurated in 2021; at which assembly was it established?", None),
    ("How many votes did Tomas Erikki win?", None),
    ("Who was Speaker before the election?", None),  # the event's day is not looked up
]  # fmt: skip


@pytest.mark.parametrize(("question", "period"), PERIODS)
def test_periods(question: str, period: Period | None) -> None:
    assert time_intent(question, AS_OF).period == period


NEWEST: list[tuple[str, str | None]] = [
    ("Who is the Speaker now?", "explicit"),
    ("Who is the current Speaker?", "explicit"),
    ("Who currently chairs the Assembly?", "explicit"),
    ("What is the latest on the Halden crossing?", "explicit"),
    ("Is the crossing still closed?", "explicit"),
    ("Who is the Speaker today?", "explicit"),
    ("Has the crossing reopened yet?", "explicit"),
    ("When will Kestria hold its next election?", "future"),
    ("Who is the Speaker of Kestria's National Assembly?", "present"),
    ("Is the Halden crossing open or closed?", "present"),
    ("Which national legislature does Sahiba Gafarova chair?", "present"),
    ("Who chairs the Arab Parliament?", "present"),
    ("What did Kestria do with the crossing?", None),
    ("Who was the Speaker?", None),
    ("How many votes did Tomas Erikki win?", None),
    ("On what date was Kestria's new government sworn in?", None),
    ("Who was the Speaker in 2021?", None),  # a period: no present-tense default
]


@pytest.mark.parametrize(("question", "reason"), NEWEST)
def test_prefer_newest(question: str, reason: str | None) -> None:
    intent = time_intent(question, AS_OF)
    assert (intent.reason, intent.prefer_newest) == (reason, reason is not None)
    assert intent.future == (reason == "future")


def test_present_default_can_be_switched_off() -> None:
    assert not time_intent("Who is the Speaker?", AS_OF, present=False).prefer_newest
    assert time_intent("Who is the Speaker now?", AS_OF, present=False).prefer_newest


def test_relative_words_count_from_as_of() -> None:
    def period(question: str, as_of: dt.date) -> tuple[dt.date | None, dt.date | None]:
        found = time_intent(question, as_of).period
        assert found is not None, question
        return found.since, found.until

    assert period("last month", D(2024, 1, 10)) == (D(2023, 12, 1), D(2023, 12, 31))
    assert period("in March", D(2024, 3, 1)) == (D(2024, 3, 1), D(2024, 3, 31))
    assert period("in March", D(2024, 2, 28)) == (D(2023, 3, 1), D(2023, 3, 31))
    assert period("on Feb 29", D(2025, 3, 1)) == (D(2024, 2, 29), D(2024, 2, 29))


def test_mentions_in_article_text() -> None:
    text = (
        "VELMORA, March 14, 2022 (MNA) -- Brandt replaces Halvard, who had held the post since "
        "2017. The election is due in January 2024. Talks may resume; the crossing has been "
        "closed since August 3, and the Speakers met in June."
    )
    found = {text[m.start : m.end]: (m.since, m.until) for m in time_mentions(text, D(2022, 3, 14))}
    assert found == {
        "March 14, 2022": (D(2022, 3, 14), D(2022, 3, 14)),
        "since 2017": (D(2017, 1, 1), D(2022, 3, 14)),
        "January 2024": (D(2024, 1, 1), D(2024, 1, 31)),
        "since August 3": (D(2021, 8, 3), D(2022, 3, 14)),  # the last August 3 before the date
        "June": (D(2021, 6, 1), D(2021, 6, 30)),
    }
    undated = {text[m.start : m.end] for m in time_mentions(text, None)}
    assert undated == {"March 14, 2022", "since 2017", "January 2024"}  # only what states a year


def test_a_question_costs_well_under_a_millisecond() -> None:
    questions = [q for q, _ in PERIODS + NEWEST]
    time_intent(questions[0], AS_OF)
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for q in questions:
            time_intent(q, AS_OF)
        best = min(best, (time.perf_counter() - t0) / len(questions))
    assert best < 0.001, best
