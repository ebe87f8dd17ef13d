"""The timeline beside the answer, in a real browser (see tests/webpage.py), over the dated
corpus (eval/dated/): after an answer the page asks GET /v1/timeline for the same question and
shows its events oldest first, each quote exactly the API's, opening its span in the article
panel, and each story's sources, copies marked."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from urllib.parse import urlencode

import httpx
import pytest

from rag.assistant import Assistant
from rag.settings import Settings
from server.app import create_app
from server.testing import live_server
from tests import test_timeline, webpage
from tests.webpage import (
    PHONE,
    WIDE,
    Browser,
    ask,
    expect,
    no_horizontal_scroll,
    open_page,
    shot,
    text_of,
)

pytestmark = pytest.mark.slow
browser = webpage.browser  # the fixture, made visible to pytest in this module

QUESTION = "Who was elected Speaker of Kestria's National Assembly?"


@pytest.fixture(scope="module")
def base_url(dated_settings: Settings, dated: Assistant) -> Iterator[str]:
    with live_server(create_app(dated_settings, dated)) as base:
        yield base


@pytest.fixture(scope="module")
def api(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=30) as client:
        yield client


def test_timeline_beside_the_answer(browser: Browser, base_url: str, api: httpx.Client) -> None:
    for page in open_page(browser, base_url, WIDE):
        page.goto("/")
        answer = ask(page, QUESTION)
        assert not answer["abstained"]
        timeline = api.get("/v1/timeline", params={"q": QUESTION}).json()
        events = timeline["events"]
        assert len(events) >= 3
        expect(page.locator("#timeline-status")).to_contain_text(f"{len(events)} dated events")
        items = page.locator("#timeline > li")
        expect(items).to_have_count(len(events))
        for i, e in enumerate(events):
            assert text_of(page, f"#timeline > li:nth-child({i + 1}) .event-quote") == e["quote"]
            expect(items.nth(i).locator("time")).to_have_attribute("datetime", e["event_date"])
        brandt = next(i for i, e in enumerate(events) if e["doc_id"] == test_timeline.MNA_2022)
        expect(items.nth(brandt)).to_contain_text("also in Meridian News Agency (MNA)")
        items.nth(brandt).get_by_role("button").click()
        mark = page.locator("#ask-article mark")
        expect(mark).to_be_in_viewport()
        assert mark.evaluate("n => n.textContent") == events[brandt]["quote"]
        stories = page.locator("#stories > li")
        expect(stories).to_have_count(len(timeline["stories"]))
        story = stories.filter(has_text=timeline["stories"][0]["title"])
        expect(story).to_contain_text("Meridian News Agency (MNA)")
        expect(story).to_contain_text("republished copy")
        shot(page, "30-timeline")
        copy = api.get(f"/v1/documents/{test_timeline.MENAFN_2022}").json()
        story.get_by_role("button", name=f"Open {copy['title']}").click()
        expect(page.locator("#ask-article h2")).to_have_text(copy["title"])
        # A new question replaces the timeline; one the articles don't date leaves it empty.
        ask(page, "Boris Johnson")
        expect(page.locator("#timeline-status")).to_have_text(
            "No dated events in the articles for this question."
        )
        expect(items).to_have_count(0)


def test_timeline_on_a_phone(browser: Browser, base_url: str) -> None:
    for page in open_page(browser, base_url, PHONE):
        page.goto("/")
        ask(page, QUESTION)
        expect(page.locator("#timeline > li").first).to_be_visible()
        no_horizontal_scroll(page)
        page.locator("#timeline-card").scroll_into_view_if_needed()
        shot(page, "31-timeline-phone")


def test_as_of_beside_the_question(browser: Browser, base_url: str, api: httpx.Client) -> None:
    """The "As of" date goes with the question and its timeline, stays in the URL, and the
    answer line says which day it was asked on; articles published later are not used."""
    for page in open_page(browser, base_url, WIDE):
        page.goto("/")
        page.get_by_label("As of").fill("2023-01-01")
        with (
            page.expect_request("**/v1/timeline?*") as timeline_request,
            page.expect_request("**/v1/ask") as ask_request,
        ):
            answer = ask(page, QUESTION)
        assert json.loads(ask_request.value.post_data or "{}")["as_of"] == "2023-01-01"
        assert "as_of=2023-01-01" in timeline_request.value.url
        assert answer["as_of"] == "2023-01-01" and not answer["abstained"]
        assert all(c["date"] <= "2023-01-01" for c in answer["citations"])
        expect(page.locator("#answer-meta")).to_contain_text("as of 2023-01-01")
        assert "as_of=2023-01-01" in page.url
        timeline = api.get("/v1/timeline", params={"q": QUESTION, "as_of": "2023-01-01"}).json()
        assert timeline["events"] and all(e["date"] <= "2023-01-01" for e in timeline["events"])
        expect(page.locator("#timeline > li")).to_have_count(len(timeline["events"]))
        shot(page, "32-as-of")
        # A reload asks on the same day; emptied, the server's day (today) is used.
        page.reload()
        expect(page.get_by_label("As of")).to_have_value("2023-01-01")
        expect(page.locator("#answer-meta")).to_contain_text("as of 2023-01-01")
        page.get_by_label("As of").fill("")
        with page.expect_request("**/v1/ask") as later:
            today = ask(page, QUESTION)
        assert "as_of" not in json.loads(later.value.post_data or "{}")
        expect(page.locator("#answer-meta")).to_contain_text(f"as of {today['as_of']}")


def test_as_of_on_a_phone(browser: Browser, base_url: str) -> None:
    for page in open_page(browser, base_url, PHONE):
        page.goto("/?" + urlencode({"q": QUESTION, "as_of": "2023-01-01"}))
        expect(page.locator("#answer-meta")).to_contain_text("as of 2023-01-01")
        expect(page.get_by_label("As of")).to_be_visible()
        no_horizontal_scroll(page)
        shot(page, "33-as-of-phone")


def test_document_view_lists_copies(browser: Browser, base_url: str, api: httpx.Client) -> None:
    """A copy names the story's first publication; that one lists its copies; each opens."""
    copy = api.get(f"/v1/documents/{test_timeline.MENAFN_2022}").json()
    original = api.get(f"/v1/documents/{test_timeline.MNA_2022}").json()
    assert copy["canonical"] == test_timeline.MNA_2022 == original["canonical"]
    for page in open_page(browser, base_url, WIDE):
        page.goto("/?" + urlencode({"view": "documents", "open": test_timeline.MENAFN_2022}))
        panel = page.locator("#doc-article")
        expect(panel.locator("h2")).to_have_text(copy["title"])
        row = panel.locator("dt", has_text="Republished copy of")
        expect(row).to_have_count(1)
        link = panel.get_by_role("link", name=f"Open {original['title']} ({original['source']})")
        expect(link).to_have_attribute("href", re.compile(r"open=2022-03-14_mna_"))
        shot(page, "34-document-copy")
        link.click()
        expect(panel.locator("h2")).to_have_text(original["title"])
        assert f"open={test_timeline.MNA_2022}" in page.url
        expect(panel.locator("dt", has_text="Republished copy of")).to_have_count(0)
        others = panel.locator("dd ul.copies > li")
        expect(others).to_have_count(len(original["copies"]))
        for i, c in enumerate(original["copies"]):
            expect(others.nth(i)).to_contain_text(c["source"] or "source not stated")
        expect(panel).to_contain_text("Also published by")
        shot(page, "35-document-copies")
