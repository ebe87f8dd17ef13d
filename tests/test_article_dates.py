"""Article dates and their provenance: real seeds and BBC articles, front matter, HTML, datelines,
date stamps in the text, filters, the stored index and the HTTP API. No mocks: real files."""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rag.assistant import Assistant
from rag.embedding import Embedder
from rag.index import store
from rag.index.indexing import build_index
from rag.ingest.article_dates import dateline_date, full_date, parse_date, text_date
from rag.ingest.loading import load_documents
from rag.models import Citation, Document, Filters, Passage
from rag.settings import Settings
from rag.temporal.relative_dates import resolve_relative
from server.app import create_app
from server.mcp import _list_filter
from server.testing import live_server
from tests.conftest import make_settings

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
BBC_CSV = ROOT.parent / "shared" / "bench" / "bbc-news.csv"
KUNA = "000_2e40f42646a43cae.txt"
TASNIM = "001_d02ccc4d9c9c05cf.txt"
NAM = "002_ada552b2d9cfc3c4.txt"
# The opening of the Trend article the issue quotes (a dateline with its year).
TREND = (
    "BAKU, May 3, 2021 (Trend) -- Azerbaijan and Iran discussed the construction of the "
    "Aghband-Kalaleh bridge over the Araz river. The sides agreed to speed up the work.\n"
)


def load(root: Path, files: dict[str, str]) -> dict[str, Document]:
    for rel, content in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(content, encoding="utf-8")
    docs, _ = load_documents(root)
    return {d.id: d for d in docs}


def dated(doc: Document) -> tuple[str | None, str | None]:
    return doc.date, doc.date_source


# --------------------------------------------------------------------------- the seeds


@pytest.fixture(scope="module")
def seeds() -> dict[str, Document]:
    docs, warnings = load_documents(SEEDS)
    assert warnings == []
    return {d.id: d for d in docs}


def test_seed_dates(seeds: dict[str, Document]) -> None:
    # KUNA: "CAIRO, Feb 9 (KUNA) --" without a year; "inaugurated in 2021" and "on Friday"
    # don't make one certain, so the date stays partial.
    assert dated(seeds[KUNA]) == ("--02-09", "dateline")
    assert seeds[KUNA].dateline == "CAIRO, Feb 9"
    # Tasnim: "TEHRAN (Tasnim) –" has no date, and "on Thursday" is no date.
    assert dated(seeds[TASNIM]) == (None, None)
    # No dateline; "June 30 – July 1, 2022" in the third paragraph dates the conference.
    assert dated(seeds[NAM]) == (None, None)


def test_dateline_year_only_when_the_text_makes_it_certain(tmp_path: Path) -> None:
    kuna = (SEEDS / KUNA).read_text(encoding="utf-8")
    same_day = kuna.replace("on Friday called", "on Friday, February 9, 2024, called", 1)
    two_years = kuna.replace(
        "on Friday called", "on Friday, Feb 9, 2024, a year after Feb 9, 2023, called", 1
    )
    other_day = kuna.replace("on Friday called", "on Friday, Feb 8, 2024, called", 1)
    docs = load(
        tmp_path,
        {"same.txt": same_day, "two.txt": two_years, "other.txt": other_day, "trend.txt": TREND},
    )
    assert dated(docs["same.txt"]) == ("2024-02-09", "dateline")
    assert dated(docs["two.txt"]) == ("--02-09", "dateline")
    assert dated(docs["other.txt"]) == ("--02-09", "dateline")
    assert dated(docs["trend.txt"]) == ("2021-05-03", "dateline")
    assert docs["trend.txt"].source == "Trend"


def test_dateline_date_rules() -> None:
    assert dateline_date("Feb", "9", None, "It was inaugurated in 2021. On Friday it met.") == (
        "--02-09"
    )
    assert dateline_date("Feb", "29", None, "") == "--02-29"  # a leap day is a valid month-day
    assert dateline_date("Feb", "30", None, "") is None
    assert dateline_date("Feb", "29", "2023", "") is None
    assert dateline_date("Friday", "9", None, "") is None  # not a month
    assert dateline_date(None, None, None, "Feb 9, 2024 — text") is None


# --------------------------------------------------------------------------- the BBC set


@pytest.fixture(scope="module")
def bbc_rows() -> list[str]:
    if not BBC_CSV.is_file():
        pytest.skip(f"the BBC set is not here: {BBC_CSV} (see ../shared/bench/README.md)")
    with BBC_CSV.open(encoding="utf-8", newline="") as fh:
        return [row["text"] for row in csv.DictReader(fh)]


@pytest.fixture(scope="module")
def bbc_docs(bbc_rows: list[str], tmp_path_factory: pytest.TempPathFactory) -> list[Document]:
    root = tmp_path_factory.mktemp("bbc")
    for i, text in enumerate(bbc_rows):
        (root / f"bbc-{i:03d}.txt").write_text(text, encoding="utf-8")
    docs, _ = load_documents(root)
    return docs


def bbc_text(rows: list[str], words: str) -> str:
    (text,) = [t for t in rows if words in t]
    return text


def test_bbc_articles_state_no_date_of_their_own(bbc_docs: list[Document]) -> None:
    """928 real articles: their dates are of matches, elections and history, not their own."""
    assert len(bbc_docs) == 928
    assert [d.id for d in bbc_docs if d.date or d.date_source] == []


@pytest.mark.parametrize(
    "words",
    [
        "saturday  26 february  1400 gmt",  # a fixture: match day and kick-off time, no year
        "tuesday  1 march  2000 gmt",  # "2000" is the kick-off time, not a year
        "since 11 september  2001",  # an earlier event, in the second sentence
        "met nelson college on 14 may  1870",  # history, in the third sentence
        "in dublin on 12 october 2005",  # a match to come
        "name 5 may as election day",  # an election day without a year
    ],
)
def test_bbc_event_dates_are_not_article_dates(bbc_rows: list[str], words: str) -> None:
    text = bbc_text(bbc_rows, words)
    assert text_date(text) is None


def test_bbc_first_sentences_with_a_stamp_or_dateline(tmp_path: Path, bbc_rows: list[str]) -> None:
    wedding = bbc_text(bbc_rows, "to be married on 8 april")
    preview = bbc_text(bbc_rows, "saturday  26 february  1400 gmt")
    docs = load(
        tmp_path,
        {
            "stamp.txt": "Published: 10 February 2005\n\n" + wedding,
            "stamp-lower.txt": "thursday 10 february 2005 - " + wedding,
            "updated.txt": "Updated: 10 February 2005\n\n" + wedding,
            "dateline.txt": "LONDON, Feb 10 (BBC) -- " + wedding,
            "dateline-preview.txt": "EDINBURGH, Feb 24 (BBC) -- " + preview,
        },
    )
    assert dated(docs["stamp.txt"]) == ("2005-02-10", "text")
    assert dated(docs["stamp-lower.txt"]) == ("2005-02-10", "text")
    assert dated(docs["updated.txt"]) == (None, None)  # an edit's date is not the article's
    # "married on 8 april" (no year) pins nothing: the dateline's date stays partial.
    assert dated(docs["dateline.txt"]) == ("--02-10", "dateline")
    assert dated(docs["dateline-preview.txt"]) == ("--02-24", "dateline")


# --------------------------------------------------------------------------- text stamps


@pytest.mark.parametrize(
    ("text", "date"),
    [
        ("Feb 9, 2024 — The ministry said on Friday. It met.", "2024-02-09"),
        ("Friday, February 9, 2024\nThe ministry said. It met.", "2024-02-09"),
        ("LONDON, 9 February 2024 - Stocks fell. Bonds rose.", "2024-02-09"),
        ("(9 February 2024) Stocks fell.", "2024-02-09"),
        ("2024-02-09: stocks fell.", "2024-02-09"),
        ("posted on feb 9 2024 by the desk. stocks fell.", "2024-02-09"),
        ("By Jane Doe\nPublished 9th of Feb. 2024 10:30 GMT\nStocks fell.", "2024-02-09"),
        ("Stocks fell on 9 February 2024. Bonds rose.", None),  # prose: an event
        ("9 February 2024 was a day to remember.", None),  # the subject of a sentence
        ("The statement, dated Feb 9, 2024, said so.", None),  # the statement's date
        ("Stocks fell. Bonds rose. Gold held. Published: 9 February 2024.", None),  # too late
        ("Published: 30 February 2024\nStocks fell.", None),  # impossible
    ],
)
def test_text_date_stamps(text: str, date: str | None) -> None:
    assert text_date(text) == date


def test_a_date_line_is_not_a_headline(tmp_path: Path) -> None:
    docs = load(tmp_path, {"a.txt": "9 February 2024\n\nStocks fell sharply. Bonds rose.\n"})
    assert docs["a.txt"].title == "Stocks fell sharply"
    assert dated(docs["a.txt"]) == ("2024-02-09", "text")


# --------------------------------------------------------------------------- stated metadata


def test_front_matter_dates(tmp_path: Path) -> None:
    kuna_lead = "CAIRO, Feb 9 (KUNA) -- The Arab Parliament on Friday called for action.\n"
    docs = load(
        tmp_path,
        {
            "full.md": "---\ndate: 2024-03-05\n---\n" + kuna_lead,
            "datetime.md": "---\ndate: 2024-03-05T08:30:00+01:00\n---\nText here. More.\n",
            "written.md": '---\ndate: "March 5, 2024"\n---\nText here. More.\n',
            "partial.md": "---\ndate: Mar 5\n---\nText here. More.\n",
            "junk.md": "---\ndate: soon\n---\n" + kuna_lead,
        },
    )
    assert dated(docs["full.md"]) == ("2024-03-05", "front-matter")  # wins over the dateline
    assert dated(docs["datetime.md"]) == ("2024-03-05", "front-matter")
    assert dated(docs["written.md"]) == ("2024-03-05", "front-matter")
    assert dated(docs["partial.md"]) == ("--03-05", "front-matter")
    assert dated(docs["junk.md"]) == ("--02-09", "dateline")  # unparseable: the next source


def page(head: str, body: str) -> str:
    return f"<!doctype html><html><head><title>T</title>{head}</head><body>{body}</body></html>"


def test_html_meta_and_time_dates(tmp_path: Path) -> None:
    dateline = "<p>CAIRO, Feb 9 (KUNA) -- The Arab Parliament on Friday called.</p>"
    published = '<meta property="article:published_time" content="2024-02-09T10:00:00Z">'
    docs = load(
        tmp_path,
        {
            "og.html": page(published + '<meta name="date" content="2023-01-01">', dateline),
            "name.html": page('<meta name="date" content="2024-02-08">', dateline),
            "item.html": page('<meta itemprop="datePublished" content="Feb 7, 2024">', "A."),
            "bad-meta.html": page('<meta name="date" content="today">', dateline),
            "time.html": page(
                "", '<header><time datetime="2024-02-06">6 Feb</time></header>' + dateline
            ),
            "time-text.html": page("", "<header><time>5 February 2024</time></header><p>A.</p>"),
            "time-prose.html": page(
                "", '<p>The summit on <time datetime="2023-05-01">May 1</time> ended.</p>'
            ),
            "time-pubdate.html": page(
                "", '<p>Posted <time pubdate datetime="2024-02-04">today</time>.</p><p>A.</p>'
            ),
            "time-in-nav.html": page("", '<nav><time datetime="2020-01-01">x</time></nav>A.'),
            "plain.html": page("", dateline),
        },
    )
    assert dated(docs["og.html"]) == ("2024-02-09", "html-meta")  # published_time ranks first
    assert dated(docs["name.html"]) == ("2024-02-08", "html-meta")  # wins over the dateline
    assert dated(docs["item.html"]) == ("2024-02-07", "html-meta")
    assert dated(docs["bad-meta.html"]) == ("--02-09", "dateline")
    assert dated(docs["time.html"]) == ("2024-02-06", "html-meta")
    assert dated(docs["time-text.html"]) == ("2024-02-05", "html-meta")
    assert dated(docs["time-prose.html"]) == (None, None)  # an event in the prose
    assert dated(docs["time-pubdate.html"]) == ("2024-02-04", "html-meta")
    assert dated(docs["time-in-nav.html"]) == (None, None)  # navigation is dropped
    assert dated(docs["plain.html"]) == ("--02-09", "dateline")
    assert "2024" not in docs["og.html"].text  # metadata, not text


def test_parse_date_values() -> None:
    assert parse_date("Fri, 09 Feb 2024 10:00:00 GMT") == "2024-02-09"
    assert parse_date("2024-02-09T23:59:59-05:00") == "2024-02-09"  # the date as written
    assert parse_date("9 February") == "--02-09"
    assert parse_date("--02-09") == "--02-09"
    for junk in ("2024", "2024-02", "February 2024", "2024-13-01", "February 29, 2023", ""):
        assert parse_date(junk) is None, junk


def test_mtime_is_never_a_date(tmp_path: Path) -> None:
    files = {
        "undated.txt": "Stocks fell sharply. Bonds rose.\n",
        "kuna.txt": "CAIRO, Feb 9 (KUNA) -- The parliament met. It agreed.\n",
        "undated.html": page("", "<p>Stocks fell sharply. Bonds rose.</p>"),
        "undated.md": "---\ntitle: T\n---\nStocks fell sharply.\n",
    }
    for rel, content in files.items():
        (tmp_path / rel).write_text(content, encoding="utf-8")
        stamp = dt.datetime(2020, 2, 9, 12, tzinfo=dt.UTC).timestamp()
        os.utime(tmp_path / rel, (stamp, stamp))
    docs, _ = load_documents(tmp_path)
    assert {d.id: dated(d) for d in docs} == {
        "kuna.txt": ("--02-09", "dateline"),  # the mtime's year (2020) is not borrowed
        "undated.html": (None, None),
        "undated.md": (None, None),
        "undated.txt": (None, None),
    }


# --------------------------------------------------------------------------- filters


def test_full_date() -> None:
    assert full_date("2024-02-09") == dt.date(2024, 2, 9)
    assert full_date("--02-09") is None
    assert full_date(None) is None


def test_partial_dates_never_match_a_date_range(assistant: Assistant) -> None:
    undated = assistant.search("Arab Parliament Gaza", top_k=5)
    assert KUNA in {p.doc_id for p in undated.passages}
    far = Filters(date_from=dt.date(1900, 1, 1), date_to=dt.date(2100, 1, 1))
    for filters in (far, Filters(date_to=dt.date(2100, 1, 1)), Filters(date_from=dt.date(1, 1, 1))):
        assert assistant.search("Arab Parliament Gaza", filters=filters).passages == []
    docs = assistant.documents()
    assert [d.id for d in _list_filter(docs, None, None, dt.date(2100, 1, 1), None)] == []
    assert len(_list_filter(docs, None, None, None, None)) == 3


@pytest.mark.slow
def test_full_dates_filtered_partial_skipped(fresh_corpus: Settings, embedder: Embedder) -> None:
    (fresh_corpus.seeds_dir / "trend.txt").write_text(TREND, encoding="utf-8")
    build_index(fresh_corpus, embedder=embedder, progress=False)
    a = Assistant.open(settings=fresh_corpus, embedder=embedder)
    q = "Azerbaijan bridge Araz Arab Parliament"
    in_2021 = Filters(date_from=dt.date(2021, 1, 1), date_to=dt.date(2021, 12, 31))
    assert {p.doc_id for p in a.search(q, top_k=10, filters=in_2021).passages} == {"trend.txt"}
    later = Filters(date_from=dt.date(2021, 5, 4))
    assert a.search(q, filters=later).passages == []
    until = Filters(date_to=dt.date(2021, 5, 3))
    assert {p.doc_id for p in a.search(q, top_k=10, filters=until).passages} == {"trend.txt"}
    everything = {p.doc_id: p for p in a.search(q, top_k=10).passages}
    assert {"trend.txt", KUNA} <= set(everything)
    assert (everything["trend.txt"].date, everything["trend.txt"].date_source) == (
        "2021-05-03",
        "dateline",
    )
    assert (everything[KUNA].date, everything[KUNA].date_source) == ("--02-09", "dateline")


# --------------------------------------------------------------------------- the stored index


def test_index_stores_date_source(seeds_settings: Settings) -> None:
    _, path = store.version_path(seeds_settings.index_dir)
    docs = {d.id: d for d in store.read_data(path).documents}
    assert dated(docs[KUNA]) == ("--02-09", "dateline")
    assert dated(docs[TASNIM]) == (None, None)


@pytest.mark.slow
def test_index_without_date_source_reads_and_rebuilds(
    seeds_settings: Settings, embedder: Embedder, tmp_path: Path
) -> None:
    """An index written before dates had a source: served with null sources, then rebuilt."""
    settings = make_settings(seeds_settings.seeds_dir, tmp_path / "index")
    shutil.copytree(seeds_settings.index_dir, settings.index_dir)
    _, path = store.version_path(settings.index_dir)
    con = sqlite3.connect(path / "tables.sqlite")
    con.execute("ALTER TABLE documents DROP COLUMN date_source")
    con.execute("UPDATE documents SET date = NULL")  # the old rule: no year, no date
    con.commit()
    con.close()
    manifest = json.loads((path / "manifest.json").read_text())
    del manifest["settings"]["meta_version"]
    (path / "manifest.json").write_text(json.dumps(manifest))

    old = Assistant.open(settings=settings, embedder=embedder)
    assert all(d.date is None and d.date_source is None for d in old.documents())
    assert old.search("Arab Parliament", top_k=1).passages[0].date_source is None

    report = build_index(settings, embedder=embedder, progress=False)
    assert report.full_rebuild and report.reason == "model or chunker settings changed"
    docs = {d.id: d for d in Assistant.open(settings=settings, embedder=embedder).documents()}
    assert dated(docs[KUNA]) == ("--02-09", "dateline")


# --------------------------------------------------------------------------- every interface


def test_citations_take_their_documents_date() -> None:
    passage = Passage(
        doc_id="a", title="A", date="--02-09", date_source="dateline", start=0, end=3,
        text="abc", score=1.0, rank=1, chunk_id="a#0",
    )  # fmt: skip
    cite = Citation(n=1, doc_id="a", title="A", start=0, end=3, quote="abc", score=1.0)
    assert (cite.dated([passage]).date, cite.dated([passage]).date_source) == (
        "--02-09",
        "dateline",
    )
    other = cite.model_copy(update={"doc_id": "b"})
    assert other.dated([passage]).date_source is None


@pytest.fixture(scope="module")
def client(seeds_settings: Settings, embedder: Embedder) -> Iterator[httpx.Client]:
    # The rule-based extractive answers (not a trained reader's), answered in this process.
    settings = seeds_settings.model_copy(update={"answer_processes": 0, "reader": "rules"})
    assistant = Assistant.open(settings=settings, embedder=embedder)
    with (
        live_server(create_app(settings, assistant)) as base,
        httpx.Client(base_url=base, timeout=60) as c,
    ):
        yield c


@pytest.mark.slow
def test_http_answers_carry_dates(client: httpx.Client) -> None:
    r = client.post("/v1/ask", json={"question": "Who chairs the Arab Parliament?"})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["citations"] and not answer["abstained"]
    for item in answer["citations"] + answer["passages"]:
        assert "date" in item and "date_source" in item
    kuna = [c for c in answer["citations"] if c["doc_id"] == KUNA]
    assert kuna and all((c["date"], c["date_source"]) == ("--02-09", "dateline") for c in kuna)
    search = client.post("/v1/search", json={"question": "Arab Parliament Gaza", "top_k": 3})
    top = search.json()["passages"][0]
    assert (top["doc_id"], top["date"], top["date_source"]) == (KUNA, "--02-09", "dateline")
    doc = client.get(f"/v1/documents/{KUNA}").json()
    assert (doc["date"], doc["date_source"]) == ("--02-09", "dateline")
    listed = {d["id"]: d for d in client.get("/v1/documents").json()["items"]}
    assert (listed[TASNIM]["date"], listed[TASNIM]["date_source"]) == (None, None)
    ranged = client.post(
        "/v1/search",
        json={"question": "Arab Parliament", "filters": {"date_to": "2100-01-01"}},
    )
    assert ranged.status_code == 200 and ranged.json()["passages"] == []
    schema = client.get("/openapi.json").json()["components"]["schemas"]
    assert set(schema["Citation"]["properties"]) >= {"date", "date_source"}


# --------------------------------------------------------------------------- relative days


def test_relative_days_in_the_seeds() -> None:
    kuna = (SEEDS / KUNA).read_text(encoding="utf-8")
    # The KUNA article's own date has no year: nothing to count from.
    assert resolve_relative(kuna, "--02-09") == []
    assert resolve_relative(kuna, None) == []
    # Had it been dated Friday 9 February 2024, "on Friday" is that day.
    (friday,) = resolve_relative(kuna, "2024-02-09")
    assert kuna[friday[0] : friday[1]] == "Friday" and friday[2] == "2024-02-09"
    tasnim = (SEEDS / TASNIM).read_text(encoding="utf-8")
    spans = resolve_relative(tasnim, dt.date(2022, 5, 2))  # a Monday
    assert [(tasnim[s:e], iso) for s, e, iso in spans] == [("Thursday", "2022-04-28")]


def test_relative_days_in_a_bbc_article(bbc_rows: list[str]) -> None:
    text = bbc_text(bbc_rows, "full-contact training")
    spans = resolve_relative(text, "2005-02-10")  # a Thursday
    found = [(text[s:e], iso) for s, e, iso in spans]
    assert ("saturday", "2005-02-05") in found
    assert all(text[s:e].lower() == text[s:e] for s, e, _ in spans)  # exact, lower-case spans


def test_relative_day_rules() -> None:
    text = (
        "Yesterday, last Thursday and on Monday; the day before yesterday, three days ago, "
        "2 weeks ago, last week, this month, next year, two months ago, a year ago, next Friday, "
        "this Sunday, tomorrow, tonight. last friday, on Friday night."
    )
    found = [(text[s:e], iso) for s, e, iso in resolve_relative(text, "2024-02-09")]  # Friday
    assert found == [
        ("Yesterday", "2024-02-08"),
        ("last Thursday", "2024-02-08"),
        ("Monday", "2024-02-05"),
        ("the day before yesterday", "2024-02-07"),
        ("three days ago", "2024-02-06"),
        ("2 weeks ago", "2024-01-26"),
        ("last week", "2024-W05"),
        ("this month", "2024-02"),
        ("next year", "2025"),
        ("two months ago", "2023-12"),
        ("a year ago", "2023"),
        ("next Friday", "2024-02-16"),
        ("this Sunday", "2024-02-11"),
        ("tomorrow", "2024-02-10"),
        ("tonight", "2024-02-09"),
        ("last friday", "2024-02-02"),  # "last": strictly before the date
        ("Friday", "2024-02-09"),  # plain: on or before, so the date itself
    ]
    assert resolve_relative("last week", "0001-01-03") == []  # before year 1: no date
    assert resolve_relative("They train on Saturdays.", "2024-02-09") == []  # a habit
