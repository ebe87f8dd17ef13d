"""Timelines and stories (`rag.temporal.timeline`, `rag.temporal.stories`) over the dated corpus
(eval/dated/):
a real index, the real model, and the real HTTP server, MCP endpoint and CLI. Events come
oldest first, each quoting its article exactly; wire copies are folded into `also_in`; relative
days count from a story's first publication; stories group copies and other reports of one
event; a missing or empty `q` is a 422 naming `q`."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest
from click.testing import CliRunner
from mcp import Client

from rag.assistant import Assistant
from rag.embedding import Embedder
from rag.index.indexing import build_index
from rag.ingest import near_duplicates as nd
from rag.retrieve.retrieval import Snapshot
from rag.settings import Settings
from rag.temporal.stories import story_of
from rag.temporal.timeline import Event, Timeline, period_start
from server.app import create_app
from server.testing import live_server
from tests.conftest import make_settings
from tests.test_near_duplicates import DATED, DATED_COPIES

pytestmark = pytest.mark.slow

SPEAKER = "Speaker of Kestria's National Assembly"
MNA_2022 = "2022-03-14_mna_brandt-elected-speaker.txt"
MENAFN_2022 = "2022-03-14_menafn_brandt-elected-speaker.txt"
MNA_2024 = "2024-02-20_mna_erikki-elected-speaker.txt"
HERALD_2024 = "2024-02-21_northgate-herald_erikki-becomes-speaker.md"
POLL = "2024-01-29_northgate-herald_green-alliance-tops-poll.md"
CALL = "2023-11-10_cws_lind-vuk-phone-call.txt"
CALL_COPY = "2023-11-17_harbor-post_lind-vuk-phone-call.md"
CLOSED = "2023-08-04_cws_halden-crossing-closed.txt"
REOPENED = "2024-03-08_kestria-today_halden-crossing-reopens.md"
COPIES = {c for g in DATED_COPIES for c in g.copies}

# A report in its own words (not a copy) of an event the corpus reports: the Speaker vote on
# 20 Feb 2024 (MNA_2024).
VOTE = "extra/2024-02-20_velmora-post_new-speaker.md"
VOTE_TEXT = """---
title: Erikki wins Speaker vote with Farmers' League support
date: 2024-02-20
source: Velmora Post
---
Green Alliance leader Tomas Erikki became Speaker of Kestria's National Assembly on Tuesday,
winning a majority in the first sitting of the chamber chosen at the January election.

His predecessor, Ilse Brandt of the Civic Union, took 70 votes against his 97. Deputies of the
Farmers' League, the Greens' coalition partner, voted for Erikki as a bloc.
"""



@pytest.fixture(scope="module")
def api(dated_settings: Settings, dated: Assistant) -> Iterator[httpx.Client]:
    with (
        live_server(create_app(dated_settings, dated)) as base,
        httpx.Client(base_url=base, timeout=30) as client,
    ):
        yield client


def words(text: str) -> list[str]:
    return [w.norm for w in nd.words(text)]


def check_events(snap: Snapshot, t: Timeline) -> None:
    """Exact quotes and relative days, oldest first, no text twice, copies folded."""
    for e in [*t.events, *t.undated]:
        assert snap.docs[e.doc_id].text[e.start : e.end] == e.quote
        if e.relative is not None:
            assert e.start <= e.relative.start < e.relative.end <= e.end
            assert snap.docs[e.doc_id].text[e.relative.start : e.relative.end] == e.relative.text
            assert e.event_date == e.relative.date and e.event_date_basis == "relative"
        for a in e.also_in:  # the same words at the copy's own offsets
            assert words(snap.docs[a.doc_id].text[a.start : a.end]) == words(e.quote)
        assert e.story in {s.id for s in t.stories}
    keys = [" ".join(e.quote.split()).casefold() for e in [*t.events, *t.undated]]
    assert len(keys) == len(set(keys))
    order = [(period_start(e.event_date), e.event_date) for e in t.events if e.event_date]
    assert [d for d, _ in order] == sorted(d for d, _ in order)


def event_on(t: Timeline, day: str) -> Event:
    found = [e for e in t.events if e.event_date == day]
    assert len(found) == 1, (day, [e.event_date for e in t.events])
    return found[0]


# ---------------------------------------------------------------------------- the library


def test_the_speaker_timeline(dated: Assistant) -> None:
    t = dated.timeline(SPEAKER)
    snap = dated.snapshot
    check_events(snap, t)
    assert not t.undated
    assert not {e.doc_id for e in t.events} & COPIES  # every story cited by its first publication
    brandt = event_on(t, "2022-03-14")  # "on Monday", counted from 14 Mar 2022
    assert brandt.doc_id == MNA_2022 and "elected Ilse Brandt" in brandt.quote
    assert brandt.relative is not None and brandt.relative.text == "Monday"
    assert [a.doc_id for a in brandt.also_in] == [MENAFN_2022]  # the MENAFN copy, folded
    assert brandt.quote.startswith("The National Assembly")  # no headline, no dateline
    assert event_on(t, "2022-02").quote.startswith("Halvard stepped down last month")
    assert event_on(t, "2024-01-28").doc_id == POLL  # "Sunday's parliamentary election"
    erikki = event_on(t, "2024-02-20")
    assert erikki.doc_id == MNA_2024 and [a.doc_id for a in erikki.also_in] == [HERALD_2024]
    days = [e.event_date for e in t.events]
    assert days.index("2022-03-14") < days.index("2024-02-20")
    stories = {s.id: s for s in t.stories}
    assert stories[MNA_2022].doc_ids == [MNA_2022, MENAFN_2022]
    assert stories[MNA_2022].articles == 1  # a copy counts once
    assert stories[MNA_2022].members[1].copy_of == MNA_2022
    assert stories[MNA_2024].doc_ids == [MNA_2024, HERALD_2024]
    assert stories[MNA_2024].first_date == "2024-02-20"
    assert stories[MNA_2024].last_date == "2024-02-21"
    assert [s.first_date for s in t.stories] == sorted(s.first_date or "" for s in t.stories)
    assert t.timings["total"] > 0


def test_a_copy_cited_through_a_filter_counts_days_from_the_first_publication(
    dated: Assistant,
) -> None:
    """Harbor Post republished the CWS call a week later: its "on Thursday" is still 9 Nov."""
    t = dated.timeline("Halden border crossing", filters={"sources": ["Harbor Post"]})
    check_events(dated.snapshot, t)
    call = event_on(t, "2023-11-09")
    assert call.doc_id == CALL_COPY and call.date == "2023-11-17"
    assert [a.doc_id for a in call.also_in] == [CALL]
    assert {e.doc_id for e in t.events} == {CALL_COPY}


def test_both_ends_of_the_closure(dated: Assistant) -> None:
    t = dated.timeline("When was the Halden crossing closed and when did it reopen?")
    check_events(dated.snapshot, t)
    assert event_on(t, "2023-08-03").doc_id == CLOSED  # "on Thursday"
    assert event_on(t, "2024-03-07").doc_id == REOPENED  # "yesterday"


def test_undated_articles_are_listed_apart(assistant: Assistant) -> None:
    """The seeds state no full date (KUNA's "Feb 9" has no year): nothing is placed in time."""
    t = assistant.timeline("Who chairs the Arab Parliament?")
    check_events(assistant.snapshot, t)
    assert t.events == [] and t.undated
    assert all(e.event_date is None and e.event_date_basis is None for e in t.undated)
    assert any("Al-Asoumi" in e.quote for e in t.undated)
    assert all(s.first_date is None for s in t.stories)


@pytest.mark.parametrize("query", ["Boris Johnson", "What is the boiling point of nitrogen?"])
def test_nothing_about_it_gives_an_empty_timeline(dated: Assistant, query: str) -> None:
    t = dated.timeline(query)
    assert (t.events, t.undated, t.stories) == ([], [], [])


def test_stories_join_other_reports_of_one_event(tmp_path: Path, embedder: Embedder) -> None:
    shutil.copytree(DATED, tmp_path / "articles")
    (tmp_path / "articles" / VOTE).parent.mkdir()
    (tmp_path / "articles" / VOTE).write_text(VOTE_TEXT, encoding="utf-8")
    settings = make_settings(tmp_path / "articles", tmp_path / "index")
    build_index(settings, embedder=embedder, progress=False)
    assistant = Assistant.open(settings=settings, embedder=embedder)
    snap = assistant.snapshot
    assert snap.copies_of(VOTE) == ()  # another report, not a copy
    s = story_of(snap, VOTE)
    assert s.doc_ids == [MNA_2024, VOTE, HERALD_2024] and s.articles == 2
    assert s.sources == ["MNA", "Velmora Post", "Northgate Herald"]
    assert story_of(snap, HERALD_2024) == story_of(snap, MNA_2024) == s  # from any article
    # Other events on the same subjects stay apart (the poll three weeks before the vote, the
    # crossing closed and reopened seven months apart).
    assert story_of(snap, POLL).doc_ids == [POLL]
    assert story_of(snap, REOPENED).doc_ids == [REOPENED]
    assert story_of(snap, CLOSED).articles == 1
    t = assistant.timeline("Who was elected Speaker in February 2024?")
    check_events(snap, t)
    on_the_day = [e for e in t.events if e.event_date == "2024-02-20"]
    assert len(on_the_day) == 1 and on_the_day[0].story == MNA_2024  # one event a story a day


# ---------------------------------------------------------------------------- interfaces


def test_http_timeline(api: httpx.Client, dated: Assistant) -> None:
    r = api.get("/v1/timeline", params={"q": SPEAKER})
    assert r.status_code == 200, r.text
    body = Timeline.model_validate(r.json())
    check_events(dated.snapshot, body)
    assert [(e.event_date, e.doc_id) for e in body.events] == [
        (e.event_date, e.doc_id) for e in dated.timeline(SPEAKER).events
    ]
    params = {"q": "Halden border crossing", "source": "Harbor Post", "mode": "bm25"}
    r = api.get("/v1/timeline", params=params)
    assert r.status_code == 200 and {e["doc_id"] for e in r.json()["events"]} == {CALL_COPY}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "q"),
        ({"q": ""}, "q"),
        ({"q": "   "}, "q"),
        ({"q": "x" * 2001}, "q"),
        ({"q": SPEAKER, "top_k": "0"}, "top_k"),
        ({"q": SPEAKER, "mode": "fuzzy"}, "mode"),
        ({"q": SPEAKER, "date_from": "14 March"}, "date_from"),
        ({"q": SPEAKER, "as_of": "2024-02-30"}, "as_of"),
        ({"q": SPEAKER, "as_of": "yesterday"}, "as_of"),
    ],
)
def test_http_timeline_rejects_bad_fields(api: httpx.Client, params: dict, field: str) -> None:
    r = api.get("/v1/timeline", params=params)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["type"] == "validation_error"
    assert [f["field"] for f in error["fields"]] == [field]


def test_http_timeline_as_of_and_period(api: httpx.Client, dated: Assistant) -> None:
    """`as_of` hides later articles, like /v1/search; the response says which day and period
    it used (none named: period null)."""
    r = api.get("/v1/timeline", params={"q": SPEAKER, "as_of": "2023-01-01"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["as_of"] == "2023-01-01" and body["period"] is None
    t = Timeline.model_validate(body)
    check_events(dated.snapshot, t)
    assert t.events and all(e.doc_id < "2023-01-02" for e in t.events)  # ids start with the date
    assert "2022-03-14" in [e.event_date for e in t.events]
    assert [(e.event_date, e.doc_id) for e in t.events] == [
        (e.event_date, e.doc_id)
        for e in dated.timeline(SPEAKER, as_of=dt.date(2023, 1, 1)).events
    ]
    later = api.get("/v1/timeline", params={"q": SPEAKER, "as_of": "2024-06-01"}).json()
    assert later["as_of"] == "2024-06-01" and MNA_2024 in {e["doc_id"] for e in later["events"]}
    asked = api.get("/v1/timeline", params={"q": f"{SPEAKER} in 2022", "as_of": "2024-06-01"})
    assert asked.json()["period"] == {"since": "2022-01-01", "until": "2022-12-31"}


def test_mcp_timeline_tool(api: httpx.Client, dated: Assistant) -> None:
    async def run() -> None:
        url = str(api.base_url).rstrip("/") + "/mcp"
        async with Client(url, read_timeout_seconds=120) as client:
            result = await client.call_tool("timeline", {"question": SPEAKER})
            assert not result.is_error
            t = Timeline.model_validate(result.structured_content)
            check_events(dated.snapshot, t)
            assert "2022-03-14" in result.content[0].text
            bad = await client.call_tool("timeline", {"question": " "})
            assert bad.is_error and "question" in bad.content[0].text

    anyio.run(run)


def test_cli_timeline(dated_settings: Settings, dated: Assistant) -> None:
    from rag.cli import cli

    args = ["timeline", SPEAKER, "--index", str(dated_settings.index_dir)]
    text = CliRunner().invoke(cli, args, catch_exceptions=False).output
    lines = [line for line in text.splitlines() if line[:1].isdigit()]
    assert [line.split()[0] for line in lines] == [
        e.event_date for e in dated.timeline(SPEAKER).events
    ]
    assert f"also in {MENAFN_2022}" in text and "Stories:" in text
    found = CliRunner().invoke(cli, [*args, "--json", "-k", "3"], catch_exceptions=False)
    assert json.loads(found.output)["query"] == SPEAKER
