"""The timeline beside the answer, in a real browser (see tests/webpage.py), over the dated
corpus (eval/dated/): after an answer the page asks GET /v1/timeline for the same question and
shows its events oldest first, each quote exactly the API's, opening its span in the article
panel, and each story's sources, copies marked."""

from __future__ import annotations

from collections.abc import Iterator

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
# The fixtures, made visible to pytest in this module.
browser, dated_settings, dated = webpage.browser, test_timeline.dated_settings, test_timeline.dated

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
