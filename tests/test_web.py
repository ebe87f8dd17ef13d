"""The ask view in a real browser (see tests/webpage.py): a streamed answer with every citation
opened in its article, an abstention, the short answer, loading, an LLM answer streaming in,
errors, the question in the URL, and keyboard-only use."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest

from rag.assistant import Assistant
from server.app import create_app
from server.testing import live_server
from tests import webpage
from tests.fake_openai import FakeOpenAI
from tests.webpage import (
    QUESTION,
    UNANSWERABLE,
    WIDE,
    Browser,
    Page,
    ask,
    assert_cited_span,
    expect,
    fulfil_sse,
    open_page,
    shot,
    tab_to,
    text_of,
    wait_answer,
)

pytestmark = pytest.mark.slow
# The fixtures, made visible to pytest in this module.
browser, base_url, page, phone, api = (
    webpage.browser,
    webpage.base_url,
    webpage.page,
    webpage.phone,
    webpage.api,
)


# --------------------------------------------------------------------------- asking


def test_streamed_answer_and_every_citation_in_its_article(page: Page, api: httpx.Client) -> None:
    page.goto("/")
    expect(page.locator("#question")).to_be_focused()
    shot(page, "01-empty")
    answer = ask(page, QUESTION)
    assert not answer["abstained"] and answer["citations"]
    assert text_of(page, "#answer-text") == answer["answer"]
    assert "Al-Asoumi" in text_of(page, "#answer-text")
    assert "q=Who+chairs" in page.url
    passages = page.locator("#passages > li")
    expect(passages).to_have_count(len(answer["passages"]))
    expect(passages.first).to_contain_text(f"score {answer['passages'][0]['score']:.3f}")
    shot(page, "02-answer")
    for c in answer["citations"]:
        page.locator(f'#answer-text a.cite[data-n="{c["n"]}"]').click()
        assert_cited_span(page, c, api)
        assert f"cite={c['n']}" in page.url
    shot(page, "03-citation")
    last = answer["passages"][-1]
    page.locator("#passages > li").last.get_by_role("button").click()
    mark = page.locator("#ask-article mark")
    expect(mark).to_be_in_viewport()
    assert mark.evaluate("n => n.textContent") == last["text"]
    page.get_by_role("button", name="Close the article").click()
    expect(mark).to_have_count(0)
    expect(page.locator("#ask-article")).to_contain_text("Select a marker")


def test_abstention_still_lists_the_closest_passages(page: Page) -> None:
    page.goto("/")
    answer = ask(page, UNANSWERABLE)
    assert answer["abstained"]
    expect(page.locator("#answer-card")).to_have_class(re.compile("abstained"))
    expect(page.locator("#answer-text")).to_contain_text("The articles don't say.")
    expect(page.locator("#passages-title")).to_have_text("Closest passages")
    expect(page.locator("#passages > li")).to_have_count(len(answer["passages"]))
    assert answer["passages"]
    shot(page, "04-abstained")


def test_short_answer_is_shown_when_present(page: Page) -> None:
    """Both shapes of `short_answer` (string + short_answer_* fields, or an object) render."""
    page.goto("/")
    real = ask(page, QUESTION)
    c = next(c for c in real["citations"] if "Adel Al-Asoumi" in c["quote"])
    i = c["quote"].find("Adel Al-Asoumi")
    flat = {
        **real,
        "short_answer": "Adel Al-Asoumi",
        "short_answer_doc_id": c["doc_id"],
        "short_answer_start": c["start"] + i,
        "short_answer_end": c["start"] + i + len("Adel Al-Asoumi"),
    }
    nested = {**real, "short_answer": {"text": "Adel Al-Asoumi", "doc_id": c["doc_id"]}}
    for n, fake in enumerate([flat, nested]):
        page.route("**/v1/ask", fulfil_sse(f"event: done\ndata: {json.dumps(fake)}\n\n"))
        page.get_by_role("button", name="Ask", exact=True).click()
        box = page.locator("#short-answer")
        expect(box).to_be_visible()
        expect(box).to_contain_text("Adel Al-Asoumi")
        expect(page.locator("#answer-text strong.short-in-answer")).to_have_text("Adel Al-Asoumi")
        page.unroute("**/v1/ask")
        if n == 0:
            shot(page, "05b-short-answer")
            box.get_by_role("button", name="show in article").click()
            expect(page.locator("#ask-article mark")).to_have_text("Adel Al-Asoumi")


def test_loading_state(page: Page) -> None:
    held: list[Any] = []
    page.goto("/")

    def hold(route: Any) -> None:  # the request waits until the test lets it go
        held.append(route)

    page.route("**/v1/ask", hold)
    page.get_by_label("Your question about the articles").fill(QUESTION)
    page.get_by_role("button", name="Ask", exact=True).click()
    status = page.locator("#ask-status")
    expect(status).to_have_text("Searching the articles…")
    expect(status).to_have_class(re.compile("busy"))
    expect(page.locator("#results")).to_be_hidden()
    shot(page, "05-loading")
    assert len(held) == 1
    with page.expect_response("**/v1/ask") as info:
        held[0].continue_()
    wait_answer(page, info.value)
    expect(status).not_to_have_class(re.compile("busy"))


def test_llm_answer_streams_in(browser: Browser, assistant: Assistant, api: httpx.Client) -> None:
    """With an LLM configured (tests/fake_openai: a real local server speaking the OpenAI
    protocol, sending a word every 300 ms) the answerer can be chosen and its words appear as they
    are produced; the finished answer's markers then link to exact spans."""
    with FakeOpenAI() as fake:
        fake.answer(
            "The Arab Parliament is chaired by Adel Al-Asoumi [2], who met Gafarova in Baku [1].",
            chunk_delay=0.3,
        )
        settings = assistant.settings.with_overrides(llm_base_url=fake.base_url, llm_model="m")
        app = create_app(settings, Assistant(settings, assistant.snapshot, assistant.embedder))
        with live_server(app) as base:
            for page in open_page(browser, base, WIDE):
                page.goto("/")
                page.locator("#options summary").click()
                page.get_by_label("Answerer").select_option("llm")
                page.get_by_label("Your question about the articles").fill(QUESTION)
                with page.expect_response("**/v1/ask") as info:
                    page.get_by_role("button", name="Ask", exact=True).click()
                    text = page.locator("#answer-text.streaming")
                    expect(text).to_contain_text("The Arab Parliament is")
                    assert "Baku" not in text.inner_text()  # not all there yet
                    expect(page.locator("#ask-status")).to_have_text("Writing the answer…")
                    expect(page.locator("#passages > li")).not_to_have_count(0)
                    shot(page, "02b-llm-streaming")
                answer = wait_answer(page, info.value)
                assert answer["answerer"] == "llm" and not answer["fallback"]
                assert "answerer=llm" in page.url
                assert text_of(page, "#answer-text") == answer["answer"]
                for c in answer["citations"]:
                    page.locator(f'#answer-text a.cite[data-n="{c["n"]}"]').click()
                    mark = page.locator("#ask-article mark")
                    assert mark.evaluate("n => n.textContent") == c["quote"]
                    expect(page.locator("#citations blockquote")).to_have_count(2)
                shot(page, "02c-llm-answer")


# --------------------------------------------------------------------------- failures


def test_error_states(page: Page) -> None:
    page.goto("/")
    page.get_by_label("Your question about the articles").fill(QUESTION)
    box = page.locator("#ask-error")

    page.route(
        "**/v1/ask",
        lambda route: route.fulfill(
            status=500,
            headers={"x-request-id": "req-123"},
            json={"error": {"type": "internal_error", "message": "internal error"}},
        ),
    )
    page.get_by_role("button", name="Ask", exact=True).click()
    expect(box).to_be_visible()
    expect(box).to_contain_text("The server failed (HTTP 500)")
    expect(box).to_contain_text("req-123")
    expect(page.locator("#results")).to_be_hidden()
    shot(page, "06-error-500")
    page.unroute("**/v1/ask")

    page.route("**/v1/ask", lambda route: route.abort("connectionrefused"))
    page.get_by_role("button", name="Ask", exact=True).click()
    expect(box).to_contain_text("Lost connection to the server")
    shot(page, "07-error-offline")
    page.unroute("**/v1/ask")

    page.route("**/v1/ask", fulfil_sse('event: passages\ndata: {"passages": []}\n\n'))
    page.get_by_role("button", name="Ask", exact=True).click()
    expect(box).to_contain_text("connection was lost before the answer was finished")
    page.unroute("**/v1/ask")

    with page.expect_response("**/v1/ask") as info:
        box.get_by_role("button", name="Try again").click()
    wait_answer(page, info.value)
    expect(box).to_be_hidden()


def test_validation_error_names_the_field(page: Page) -> None:
    page.goto("/?q=" + QUESTION.replace(" ", "+") + "&k=0")
    box = page.locator("#ask-error")
    expect(box).to_contain_text("invalid top_k")
    expect(box).to_have_attribute("data-status", "422")
    expect(page.locator("#opt-k")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#options")).to_have_attribute("open", "")
    shot(page, "08-error-422")


# --------------------------------------------------------------------------- the URL


def test_question_in_the_url_is_asked_on_load_and_survives_reload(
    page: Page, api: httpx.Client
) -> None:
    with page.expect_response("**/v1/ask") as info:
        page.goto("/?q=" + QUESTION.replace(" ", "+") + "&mode=bm25")
    answer = wait_answer(page, info.value)
    assert answer["mode"] == "bm25"
    expect(page.locator("#question")).to_have_value(QUESTION)
    expect(page.locator("#opt-mode")).to_have_value("bm25")
    page.locator('#answer-text a.cite[data-n="1"]').click()
    assert "cite=1" in page.url
    with page.expect_response("**/v1/ask") as info:
        page.reload()
    assert wait_answer(page, info.value)["answer"] == answer["answer"]
    assert_cited_span(page, answer["citations"][0], api)
    shot(page, "09-reloaded")


def test_keyboard_only(page: Page, api: httpx.Client) -> None:
    page.goto("/?view=documents")
    page.locator("body").focus()
    tab_to(page, "n.id === 'nav-ask'")
    page.keyboard.press("Enter")
    tab_to(page, "n.id === 'question'")
    page.keyboard.type(QUESTION)
    with page.expect_response("**/v1/ask") as info:
        page.keyboard.press("Enter")
    answer = wait_answer(page, info.value)
    tab_to(page, "n.classList.contains('cite')")
    first = answer["citations"][0]
    assert page.evaluate("document.activeElement.dataset.n") == str(first["n"])
    assert_cited_span(page, first, api)  # focusing a marker opens its article
    page.keyboard.press("Enter")
    assert_cited_span(page, first, api)
    shot(page, "13-keyboard")
    tab_to(page, "n.getAttribute('aria-label') === 'Close the article'")
    page.keyboard.press("Escape")  # closes the article; focus goes back to the answer
    expect(page.locator("#ask-article mark")).to_have_count(0)
    expect(page.locator("#answer-title")).to_be_focused()
