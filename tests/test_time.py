"""Time in answers over the dated corpus (eval/dated): `as_of`, periods, the newest article for
questions about the present, relative days resolved in citations — through the Assistant, the
CLI, HTTP (/v1/ask, /v1/search, chat) and the MCP tools, and `rag eval`'s time metrics. Real
index, real model, real server; every quote is checked against its document."""

from __future__ import annotations

import datetime as dt
import json
import weakref
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest
from click.testing import CliRunner
from mcp import Client

from rag.assistant import Assistant
from rag.embedding import Embedder
from rag.evaluation.runner import EvalConfig, run_eval
from rag.models import Answer, Query
from rag.settings import Settings
from rag.temporal.time_scope import dates_of
from server.answering import Answering
from server.app import create_app
from server.mcp import at_once, build_mcp
from server.runtime import Runtime
from server.testing import live_server
from tests.conftest import ROOT

DATED = ROOT / "eval" / "dated" / "articles"
DATED_QA = ROOT / "eval" / "dated_qa.jsonl"
SPEAKER = "Who is the Speaker of Kestria's National Assembly?"
ERIKKI = (
    "2024-02-20_mna_erikki-elected-speaker.txt",
    "2024-02-21_northgate-herald_erikki-becomes-speaker.md",
)
F1, F1C = "2023-11-10_cws_lind-vuk-phone-call.txt", "2023-11-17_harbor-post_lind-vuk-phone-call.md"
S1C = "2022-03-14_menafn_brandt-elected-speaker.txt"



def _exact(assistant: Assistant, answer: Answer) -> None:
    """Every citation, resolved day and the short answer is an exact slice of its document."""
    for c in answer.citations:
        doc = assistant.document(c.doc_id)
        assert doc is not None and doc.text[c.start : c.end] == c.quote
        for r in c.resolved_dates:
            assert c.start <= r.start < r.end <= c.end and doc.text[r.start : r.end] == r.text
    if answer.short_answer is not None:
        s = answer.short_answer
        doc = assistant.document(s.doc_id)
        assert doc is not None and doc.text[s.start : s.end] == s.text


def _published(assistant: Assistant, doc_id: str) -> dt.date | None:
    return dates_of(assistant.snapshot).published[doc_id]


# ---------------------------------------------------------------------------- the assistant


def test_a_current_question_is_answered_from_the_newest_article(dated: Assistant) -> None:
    answer = dated.ask(SPEAKER.replace("?", " now?"), as_of=dt.date(2024, 6, 1))
    _exact(dated, answer)
    assert answer.prefer_newest and answer.as_of == dt.date(2024, 6, 1)
    lead = answer.citations[0]
    assert lead.doc_id in ERIKKI and "Erikki" in lead.quote and not lead.earlier
    assert answer.answer.startswith(f"As of {_published(dated, lead.doc_id)}: ")
    earlier = [c for c in answer.citations if c.earlier]
    lead_day = _published(dated, lead.doc_id)
    assert earlier and lead_day is not None
    assert all((_published(dated, c.doc_id) or lead_day) < lead_day for c in earlier)
    assert answer.citations[-1].earlier  # earlier claims come last, numbered in order
    assert [c.n for c in answer.citations] == list(range(1, len(answer.citations) + 1))
    assert f"Earlier ({_published(dated, earlier[0].doc_id)}): " in answer.answer


def test_as_of_hides_later_articles(dated: Assistant) -> None:
    answer = dated.ask(SPEAKER, as_of=dt.date(2022, 6, 1))
    _exact(dated, answer)
    assert not answer.abstained and "Brandt" in answer.citations[0].quote
    for p in answer.passages:  # a partial date (--03-14) is placed by its story's first day
        day = _published(dated, p.doc_id)
        assert day is not None and day <= dt.date(2022, 6, 1)
    assert _published(dated, S1C) == dt.date(2022, 3, 14)
    found = dated.search(SPEAKER, as_of=dt.date(2023, 9, 1), top_k=10)
    assert found.as_of == dt.date(2023, 9, 1) and found.passages
    days = [_published(dated, p.doc_id) for p in found.passages]
    assert all(d is not None and d <= dt.date(2023, 9, 1) for d in days)


def test_nothing_published_by_as_of_is_said(dated: Assistant) -> None:
    answer = dated.ask(SPEAKER, as_of=dt.date(2021, 12, 1))
    assert answer.abstained and not answer.passages and not answer.citations
    assert "published by 2021-12-01" in answer.answer


def test_a_period_restricts_the_articles_and_is_reported(dated: Assistant) -> None:
    answer = dated.ask("What did Kestria do with the Halden crossing in August 2023?")
    _exact(dated, answer)
    assert answer.period is not None
    assert (answer.period.since, answer.period.until) == (dt.date(2023, 8, 1), dt.date(2023, 8, 31))
    assert "closed" in answer.citations[0].quote
    lead = _published(dated, answer.citations[0].doc_id)
    assert lead is not None and dt.date(2023, 8, 1) <= lead <= dt.date(2023, 8, 31)
    before = dated.ask(
        "Who was Kestria's foreign minister before the new government of March 2024?"
    )
    assert "Lind" in before.citations[0].quote  # a later article, only where it looks back
    nothing = dated.ask("Who was Kestria's foreign minister in 2019?")
    assert nothing.abstained and nothing.period is not None
    assert nothing.period.since == dt.date(2019, 1, 1)


def test_an_event_is_dated_from_the_articles(dated: Assistant) -> None:
    """ "Sunday's parliamentary election" (29 Jan 2024) and "the January 28 election" date the
    election; "sworn in on Tuesday" (26 Mar 2024) the new government."""
    election = dated.ask("Who was the Speaker before the 2024 parliamentary election?")
    assert election.period is not None and election.period.until == dt.date(2024, 1, 27)
    assert "Brandt" in election.citations[0].quote
    government = dated.search("Who was the foreign minister before the new government?")
    assert government.period is not None and government.period.until == dt.date(2024, 3, 25)
    undatable = dated.search("Who was the foreign minister before the phone call?")
    assert undatable.period is None  # the articles give the call no day near the word
    early = dated.search("Who was the Speaker before the election?", as_of=dt.date(2023, 1, 1))
    assert early.period is None  # no article published by then dates an election


def test_relative_days_are_resolved_in_citations(dated: Assistant) -> None:
    answer = dated.ask("On what date did Anja Lind and Petar Vuk talk by telephone?")
    _exact(dated, answer)
    days = {(r.text, r.date) for c in answer.citations for r in c.resolved_dates}
    assert ("Thursday", "2023-11-09") in days  # F1c, dated a week later, counts from F1's day
    assert "Thursday (2023-11-09)" in answer.answer
    closed = dated.ask("On what date did Kestria close the Halden crossing?")
    assert "(2023-08-03)" in closed.answer
    doc = dated.document(F1C)
    assert doc is not None and "on Thursday" in doc.text  # the quote itself is never edited


def test_a_stale_date_for_the_future_is_refused(dated: Assistant) -> None:
    later = dated.ask("When will Kestria hold its next parliamentary election?")
    assert later.abstained and "is before" in later.answer
    then = dated.ask("When will Kestria hold its next parliamentary election?", as_of="2022-06-01")
    assert not then.abstained and "January 2024" in then.answer


def test_rag_as_of_pins_the_day(dated: Assistant, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_AS_OF", "2022-06-01")
    pinned = Assistant(Settings(index_dir=dated.settings.index_dir), dated.snapshot, dated.embedder)
    answer = pinned.ask(SPEAKER)
    assert answer.as_of == dt.date(2022, 6, 1) and "Brandt" in answer.citations[0].quote
    assert pinned.ask(SPEAKER, as_of="2024-06-01").citations[0].doc_id in ERIKKI  # asked wins


def test_the_present_tense_default_follows_the_setting(dated: Assistant) -> None:
    settings = dated.settings.with_overrides(prefer_newest="off")
    off = Assistant(settings, dated.snapshot, dated.embedder)
    answer = off.ask(SPEAKER, as_of=dt.date(2024, 6, 1))
    assert not answer.prefer_newest and not any(c.earlier for c in answer.citations)


# ---------------------------------------------------------------------------- CLI


def test_cli_as_of(dated_settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    from rag.cli import cli, main

    args = ["ask", SPEAKER, "--index", str(dated_settings.index_dir), "--json"]
    result = CliRunner().invoke(cli, [*args, "--as-of", "2022-06-01"], catch_exceptions=False)
    body = json.loads(result.output)
    assert body["as_of"] == "2022-06-01" and "Brandt" in body["citations"][0]["quote"]
    index = str(dated_settings.index_dir)
    found = CliRunner().invoke(
        cli, ["search", "Halden crossing", "--index", index, "--as-of", "2023-09-01"]
    )
    assert found.exit_code == 0 and "as of 2023-09-01" in found.output
    with pytest.raises(SystemExit) as exited:
        main([*args, "--as-of", "2024-02-30"])
    assert exited.value.code == 2 and "invalid as_of" in capsys.readouterr().err


# ---------------------------------------------------------------------------- HTTP, chat, MCP


@pytest.fixture(scope="module")
def client(dated_settings: Settings, dated: Assistant) -> Iterator[httpx.Client]:
    with (
        live_server(create_app(dated_settings, dated)) as base,
        httpx.Client(base_url=base, timeout=60) as c,
    ):
        yield c


def test_http_as_of_and_period(client: httpx.Client, dated: Assistant) -> None:
    body = client.post("/v1/ask", json={"question": SPEAKER, "as_of": "2024-06-01"}).json()
    assert body["as_of"] == "2024-06-01" and body["period"] is None and body["prefer_newest"]
    assert body["citations"][0]["doc_id"] in ERIKKI and body["answer"].startswith("As of ")
    asked = client.post("/v1/ask", json={"question": "Who was Kestria's foreign minister in 2019?"})
    assert asked.json()["period"] == {"since": "2019-01-01", "until": "2019-12-31"}
    found = client.post("/v1/search", json={"question": "Halden", "as_of": "2023-09-01"}).json()
    assert found["as_of"] == "2023-09-01" and found["passages"]
    assert all(p["doc_id"] < "2023-09-01" for p in found["passages"])  # ids start with the date
    with client.stream(
        "POST", "/v1/ask", json={"question": SPEAKER, "as_of": "2022-06-01", "stream": True}
    ) as streamed:
        events = [line for line in streamed.iter_lines() if line.startswith("data: ")]
    done = json.loads(events[-1][6:])
    assert done["as_of"] == "2022-06-01" and "Brandt" in done["citations"][0]["quote"]


@pytest.mark.parametrize("route", ["/v1/ask", "/v1/search"])
@pytest.mark.parametrize("value", ["2024-02-30", "yesterday", 20240101])
def test_http_bad_as_of_is_a_422_naming_it(client: httpx.Client, route: str, value: object) -> None:
    r = client.post(route, json={"question": SPEAKER, "as_of": value})
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["fields"][0]["field"] == "as_of" and "as_of" in error["message"]


def test_chat_as_of(client: httpx.Client) -> None:
    message = {"role": "user", "content": "Who is Kestria's foreign minister?"}
    body = {"model": "rag-extractive", "messages": [message], "as_of": "2023-12-01"}
    done = client.post("/v1/chat/completions", json=body).json()
    assert done["as_of"] == "2023-12-01" and "Lind" in done["choices"][0]["message"]["content"]
    assert all(c["doc_id"] < "2023-12-02" for c in done["citations"])
    bad = client.post("/v1/chat/completions", json={**body, "as_of": "soon"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "as_of"


def test_mcp_tools_take_as_of(dated_settings: Settings, dated: Assistant) -> None:
    async def run() -> None:
        mcp = build_mcp(at_once(Answering(Runtime(dated_settings, dated))))
        async with Client(mcp) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            assert "as_of" in tools["ask"].input_schema["properties"]
            assert "as_of" in tools["search_articles"].input_schema["properties"]
            asked = await client.call_tool("ask", {"question": SPEAKER, "as_of": "2022-06-01"})
            assert not asked.is_error and asked.structured_content["as_of"] == "2022-06-01"
            assert "as of 2022-06-01" in asked.content[0].text
            found = await client.call_tool(
                "search_articles", {"question": "Halden", "as_of": "2023-09-01"}
            )
            assert found.structured_content["as_of"] == "2023-09-01"
            bad = await client.call_tool("ask", {"question": SPEAKER, "as_of": "2024-13-01"})
            assert bad.is_error and "as_of" in bad.content[0].text

    anyio.run(run)


# ---------------------------------------------------------------------------- rag eval


def test_eval_reads_as_of_and_scores_time(
    dated_settings: Settings, embedder: Embedder, tmp_path: Path
) -> None:
    out = tmp_path / "report.json"
    limits = {"min_period_right": 0.9, "max_duplicate_citations": 0.0, "min_copies_folded": 0.95}
    config = EvalConfig(
        files=(DATED_QA,), index_dir=dated_settings.index_dir, json_out=out, thresholds=limits
    )
    code, failures = run_eval(config, dated_settings, embedder=embedder)
    assert (code, failures) == (0, [])
    summary = json.loads(out.read_text())["files"][0]["modes"]["hybrid"]["metrics"]
    assert summary["current_newest"] >= 0.9 and summary["quote_exact"] == 1.0
    questions = json.loads(out.read_text())["files"][0]["modes"]["hybrid"]["questions"]
    asked_on = {q["id"]: q for q in questions}
    assert asked_on["d05"]["abstained"]  # asked on 2021-12-01, before any article


def test_the_dated_questions_pass_their_checker(capsys: pytest.CaptureFixture[str]) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("check_qa", ROOT / "eval" / "check_qa.py")
    assert spec is not None and spec.loader is not None
    check_qa = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check_qa)
    assert check_qa.main(["check_qa.py", str(DATED_QA)]) == 0, capsys.readouterr().err
    bad = [json.loads(line) for line in DATED_QA.read_text(encoding="utf-8").splitlines()]
    bad[19]["answers"][0] = "2023-11-08"  # d20: not the day its "Thursday" names
    problems = check_qa.check_record(bad[19], "d20", check_qa.load_seeds(DATED), check_qa.DATED)
    assert problems and "2023-11-08" in problems[0]


def test_time_metrics_on_answers(dated: Assistant) -> None:
    from rag.evaluation.corpora import EvalQuestion
    from rag.evaluation.time_metrics import copies_folded, duplicate_citations, in_time

    rows = {r["id"]: r for r in map(json.loads, DATED_QA.read_text(encoding="utf-8").splitlines())}
    d03 = EvalQuestion.from_record(rows["d03"])
    assert d03.as_of == dt.date(2024, 6, 1) and d03.period is None
    now = dated.ask(d03.question, as_of=d03.as_of)
    assert in_time("current")(now, d03) is True and in_time("period")(now, d03) is None
    stale = dated.ask(d03.question, as_of=dt.date(2023, 1, 1))  # Brandt: not the answer then
    assert in_time("current")(stale, d03) is False
    assert copies_folded(now, d03) is True and duplicate_citations(now, d03) == 0.0
    twice = now.model_copy(update={"citations": [now.citations[0], now.citations[0]]})
    assert duplicate_citations(twice, d03) == 1.0


def test_a_query_carries_as_of_through_json() -> None:
    """What the answer processes receive (`server.answer_pool`) keeps the day."""
    query = Query(question=SPEAKER, as_of=dt.date(2024, 6, 1))
    assert Query.model_validate_json(query.model_dump_json()).as_of == dt.date(2024, 6, 1)


def test_a_snapshots_date_table_goes_with_it(dated_settings: Settings) -> None:
    """The per-snapshot date table (and its LRUs) never keeps a snapshot alive: a swapped-out
    version is freed by reference counting alone, and the memory report lists the tables."""
    from rag.memory import cache_stats
    from rag.retrieve.retrieval import Snapshot

    before = cache_stats(index_dir=dated_settings.index_dir)["time_scope.tables"].size
    snap = Snapshot.load(dated_settings.index_dir)
    table = dates_of(snap)
    assert dates_of(snap) is table  # built once
    row = snap.doc_chunks[ERIKKI[0]][0]
    times = table.times(row)
    stats = cache_stats(index_dir=dated_settings.index_dir)
    assert stats["time_scope.tables"].size == before + 1
    assert stats["time_scope.mentions"].size >= 1 and stats["time_scope.mentions"].within_bound
    gone = weakref.ref(snap)
    del snap
    assert gone() is None, "the date table keeps its snapshot alive"
    after = cache_stats(index_dir=dated_settings.index_dir)["time_scope.tables"].size
    assert after == before and table.times(row) == times
