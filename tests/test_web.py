"""The web page in a real browser: Debian's headless Chromium driven by Playwright, against a real
uvicorn server on loopback over the seeds index (real model, real FAISS).

No browser is downloaded: the tests use the `chromium` on PATH (`make setup` installs the Debian
package) and fail with one line when there is none. Every state the page can be in is saved as a
screenshot under tests/artifacts/web/ (gitignored): look at them after changing the page.
Each test also fails on any uncaught script error or Content-Security-Policy violation.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from rag.assistant import Assistant
from rag.embedding import Embedder
from rag.indexing import build_index
from rag.settings import Settings
from server.app import create_app
from server.testing import live_server
from server.web import ASSETS
from tests.fake_openai import FakeOpenAI

try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
except ImportError:  # reported by the `browser` fixture as one line
    sync_playwright = None  # type: ignore[assignment]

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts" / "web"
QUESTION = "Who chairs the Arab Parliament?"
UNANSWERABLE = "What is the boiling point of liquid nitrogen in Kelvin?"
WIDE = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 812}


def chromium_path() -> str:
    """Debian's chromium (or RAG_TEST_CHROMIUM); never a Playwright browser download."""
    path = os.environ.get("RAG_TEST_CHROMIUM") or shutil.which("chromium")
    if not path:
        pytest.fail(
            "no Chromium found: install Debian's chromium (`make setup` runs "
            "`apt-get install -y chromium`) or set RAG_TEST_CHROMIUM",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if sync_playwright is None:
        pytest.fail("playwright is not installed: run `make setup`", pytrace=False)
    exe = chromium_path()
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=exe)
        yield b
        b.close()


@pytest.fixture(scope="module")
def base_url(seeds_settings: Settings, assistant: Assistant) -> Iterator[str]:
    with live_server(create_app(seeds_settings, assistant)) as base:
        yield base


def _open_page(browser: Browser, base: str, viewport: dict[str, int]) -> Iterator[Page]:
    context = browser.new_context(base_url=base, viewport=viewport)
    context.set_default_timeout(30_000)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"script error: {exc}"))
    page.on(
        "console",
        lambda msg: (
            problems.append(f"console: {msg.text}")
            if msg.type == "error" and "Content Security Policy" in msg.text
            else None
        ),
    )
    yield page
    context.close()
    assert not problems, problems


@pytest.fixture()
def page(browser: Browser, base_url: str) -> Iterator[Page]:
    yield from _open_page(browser, base_url, WIDE)


@pytest.fixture()
def phone(browser: Browser, base_url: str) -> Iterator[Page]:
    yield from _open_page(browser, base_url, PHONE)


# Visible text whose colour against its background is below WCAG AA (4.5:1; 3:1 for large text).
LOW_CONTRAST_JS = """() => {
  const rgb = (c) => {
    const m = /rgba?\\(([^)]+)\\)/.exec(c);
    if (!m) return null;
    const p = m[1].split(/[ ,\\/]+/).filter(Boolean).map(Number);
    return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 };
  };
  const lum = ({ r, g, b }) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (node) => {
    for (let n = node; n; n = n.parentElement) {
      const c = rgb(getComputedStyle(n).backgroundColor);
      if (c && c.a > 0.5) return c;
    }
    return { r: 255, g: 255, b: 255, a: 1 };
  };
  const bad = [];
  const seen = new Set();
  const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walk.nextNode()) {
    const node = walk.currentNode.parentElement;
    if (!walk.currentNode.textContent.trim() || seen.has(node)) continue;
    seen.add(node);
    if (!node.getClientRects().length || node.closest(":disabled")) continue;
    const style = getComputedStyle(node);
    const a = lum(rgb(style.color)), b = lum(background(node));
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const size = parseFloat(style.fontSize), bold = Number(style.fontWeight) >= 700;
    const need = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    const text = walk.currentNode.textContent.trim().slice(0, 40);
    if (ratio < need) bad.push(`${node.tagName}.${node.className} ${ratio.toFixed(2)}: ${text}`);
  }
  return bad;
}"""


def shot(page: Page, name: str) -> Path:
    """Save the state (the whole page on a wide screen, what is on screen on a phone) after
    checking that all of its visible text has enough contrast."""
    assert page.evaluate(LOW_CONTRAST_JS) == [], f"low contrast in {name}"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=page.viewport_size != PHONE)
    print(f"screenshot: {path}")
    return path


def sse_events(body: str) -> list[tuple[str, Any]]:
    events = []
    for block in body.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        events.append((fields["event"], json.loads(fields["data"])))
    return events


def ask(page: Page, question: str) -> dict[str, Any]:
    """Type and submit a question; the final Answer the page received over SSE."""
    page.get_by_label("Your question about the articles").fill(question)
    with page.expect_response("**/v1/ask") as info:
        page.get_by_role("button", name="Ask", exact=True).click()
    return wait_answer(page, info.value)


def wait_answer(page: Page, response: Any) -> dict[str, Any]:
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text())
    kinds = [k for k, _ in events]
    assert kinds[0] == "passages" and kinds[-1] == "done", kinds
    done = events[-1][1]
    assert "".join(d["text"] for k, d in events if k == "delta") == done["answer"]
    expect(page.locator("#ask-status")).to_contain_text(re.compile("Answered|don't say"))
    return done


def fulfil_sse(body: str) -> Any:
    """A Playwright route handler answering with this event-stream body."""

    def handler(route: Any) -> None:
        route.fulfill(status=200, content_type="text/event-stream", body=body)

    return handler


def text_of(page: Page, selector: str) -> str:
    """textContent exactly (inner_text would normalise whitespace)."""
    return page.locator(selector).evaluate("n => n.textContent")


def assert_cited_span(page: Page, citation: dict[str, Any], api: httpx.Client) -> None:
    mark = page.locator("#ask-article mark")
    expect(mark).to_have_count(1)
    assert mark.evaluate("n => n.textContent") == citation["quote"]
    doc = api.get(f"/v1/documents/{citation['doc_id']}").json()
    assert doc["text"][citation["start"] : citation["end"]] == citation["quote"]
    assert text_of(page, "#ask-article .article-body") == doc["text"]
    panel = page.locator("#ask-article")
    expect(panel.get_by_role("heading", level=2)).to_have_text(doc["title"])
    expect(panel).to_contain_text(citation["doc_id"])
    expect(panel).to_contain_text(doc["source"])
    expect(mark).to_be_in_viewport()


@pytest.fixture(scope="module")
def api(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=30) as c:
        yield c


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
            for page in _open_page(browser, base, WIDE):
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


# --------------------------------------------------------------------------- documents and index


def test_documents_view_search_and_open(page: Page, api: httpx.Client) -> None:
    page.goto("/")
    page.get_by_role("link", name="Documents").click()
    rows = page.locator("#doc-rows tr")
    expect(rows).to_have_count(3)
    expect(page.locator("#doc-page-info")).to_have_text("1–3 of 3")
    shot(page, "10-documents")
    page.get_by_label("Search titles, ids and sources").fill("tasnim")
    page.get_by_label("Search titles, ids and sources").press("Enter")
    expect(rows).to_have_count(1)
    assert "dq=tasnim" in page.url
    doc = api.get("/v1/documents", params={"q": "tasnim"}).json()["items"][0]
    rows.first.get_by_role("button", name=doc["title"]).click()
    panel = page.locator("#doc-article")
    expect(panel.get_by_role("heading", level=2)).to_have_text(doc["title"])
    full = api.get(f"/v1/documents/{doc['id']}").json()
    assert text_of(page, "#doc-article .article-body") == full["text"]
    expect(panel).to_contain_text(f"{len(full['text']):,} characters")
    shot(page, "11-document-open")
    page.get_by_label("Search titles, ids and sources").fill("no such words anywhere")
    page.get_by_label("Search titles, ids and sources").press("Enter")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("No documents match")


def test_index_view_rebuilds_with_progress(page: Page, api: httpx.Client) -> None:
    status = api.get("/v1/index/status").json()
    page.goto("/?view=index")
    facts = page.locator("#index-facts")
    expect(facts).to_contain_text(f"Chunks{status['chunks']}")
    expect(facts).to_contain_text(status["serving_version"])
    # The seeds are up to date, so the real rebuild takes milliseconds: the first two status
    # polls after the click are shown as "running" to see the progress state.
    running = {"left": 2}

    def still_running(route: Any) -> None:
        real = route.fetch().json()
        if running["left"] and real["last"]:
            running["left"] -= 1
            real.update(running=True)
            real["last"].update(ok=None, finished_at=None, report=None)
        route.fulfill(json=real)

    page.route("**/v1/index/status", still_running)
    page.get_by_role("button", name="Rebuild the index").click()
    progress = page.locator("#rebuild-progress")
    expect(progress).to_be_visible()
    expect(progress).to_contain_text("Rebuilding…")
    expect(page.locator("#rebuild-button")).to_be_disabled()
    shot(page, "12-index-rebuilding")
    expect(page.locator("#rebuild-status")).to_contain_text("Rebuild finished", timeout=60_000)
    expect(progress).to_be_hidden()
    expect(page.locator("#rebuild-facts")).to_contain_text("succeeded")
    expect(page.locator("#rebuild-facts")).to_contain_text("up to date")
    shot(page, "12-index-rebuilt")


def test_document_search_and_assets(api: httpx.Client) -> None:
    def ids(q: str, **params: Any) -> list[str]:
        r = api.get("/v1/documents", params={"q": q, **params})
        assert r.status_code == 200, r.text
        return [d["id"] for d in r.json()["items"]]

    assert ids("KUNA") == ["000_2e40f42646a43cae.txt"]  # source, any case
    assert ids("001_d02") == ["001_d02ccc4d9c9c05cf.txt"]  # id
    assert ids("parliamentary NETWORK") == ["002_ada552b2d9cfc3c4.txt"]  # every word, in the title
    assert len(ids("  ")) == 3
    page = api.get("/v1/documents", params={"q": ".TXT", "limit": 1, "offset": 1}).json()
    assert page["total"] == 3 and len(page["items"]) == 1
    assert api.get("/v1/documents", params={"q": "x" * 201}).status_code == 422

    home = api.get("/")
    assert "script-src 'self'" in home.headers["content-security-policy"]
    assert home.headers["content-type"].startswith("text/html")
    js = api.get("/static/app.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    for name in ASSETS:
        if name.endswith(".js"):
            code = api.get(f"/static/{name}").text
            assert "innerHTML" not in code.replace("assigns innerHTML", ""), name
    for path in ("/static/index.html", "/static/..%2Fweb.py", "/static/nope.js"):
        r = api.get(path)
        assert r.status_code == 404 and r.json()["error"]["type"] == "not_found", path


def test_config_says_who_may_rebuild(seeds_settings: Settings, assistant: Assistant) -> None:
    async def fetch(settings: Settings, host: str) -> Any:
        transport = httpx.ASGITransport(app=create_app(settings, assistant), client=(host, 4000))
        async with httpx.AsyncClient(transport=transport, base_url="http://x") as c:
            return (await c.get("/v1/config")).json()

    def config(settings: Settings, host: str) -> Any:
        # Its own thread: Playwright's sync API keeps an event loop on this one.
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(anyio.run, fetch, settings, host).result()

    local = config(seeds_settings, "127.0.0.1")
    assert local["rebuild"] == "allowed" and local["answerers"] == ["extractive"]
    assert config(seeds_settings, "203.0.113.7")["rebuild"] == "forbidden"
    tokened = seeds_settings.with_overrides(admin_token="t", llm_base_url="http://127.0.0.1:9/v1")
    remote = config(tokened, "203.0.113.7")
    assert remote["rebuild"] == "token" and remote["answerers"] == ["extractive", "llm"]


# --------------------------------------------------------------------------- keyboard and phone


def tab_to(page: Page, predicate: str, limit: int = 40) -> None:
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate(f"(() => {{ const n = document.activeElement; return {predicate}; }})()"):
            return
    raise AssertionError(f"Tab never reached an element where {predicate}")


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


def no_horizontal_scroll(page: Page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"page is {width}px wide on a {PHONE['width']}px screen"


def test_phone_width(phone: Page, api: httpx.Client) -> None:
    phone.goto("/")
    no_horizontal_scroll(phone)
    answer = ask(phone, QUESTION)
    no_horizontal_scroll(phone)
    shot(phone, "14-phone-answer")
    phone.locator('#answer-text a.cite[data-n="1"]').click()
    assert_cited_span(phone, answer["citations"][0], api)
    answer_box = phone.locator("#answer-card").bounding_box()
    article_box = phone.locator("#ask-article").bounding_box()
    assert answer_box and article_box and article_box["y"] > answer_box["y"] + answer_box["height"]
    no_horizontal_scroll(phone)
    shot(phone, "15-phone-citation")
    phone.goto("/?view=documents")
    expect(phone.locator("#doc-rows tr")).to_have_count(3)
    phone.locator("#doc-rows button").first.click()
    expect(phone.locator("#doc-article h2")).to_be_in_viewport()
    no_horizontal_scroll(phone)
    shot(phone, "16-phone-documents")
    phone.goto("/?view=index")
    expect(phone.locator("#index-facts")).to_contain_text("Documents")
    no_horizontal_scroll(phone)
    shot(phone, "17-phone-index")


# --------------------------------------------------------------------------- article text is text


def test_markup_stays_text_and_documents_page(
    browser: Browser, tmp_path: Path, embedder: Embedder
) -> None:
    """A corpus of 26 articles, one with HTML in its title, source and text."""
    seeds = tmp_path / "seeds"
    shutil.copytree(ROOT / "seeds", seeds)
    for i in range(22):
        (seeds / f"note_{i:02}.txt").write_text(
            f"Committee note {i}\n\nCommittee {i} met on a Tuesday to discuss item {i}.\n"
        )
    evil = '<img src=x onerror="window.pwned=1"> <b>bold</b>'
    (seeds / "evil.md").write_text(
        f"---\ntitle: {evil}\nsource: <script>window.pwned=2</script>\n---\n"
        f"The council met on Monday. {evil} The chairman spoke about the <i>budget</i>.\n"
    )
    settings = Settings(seeds_dir=seeds, index_dir=tmp_path / "index")  # type: ignore[call-arg]
    build_index(settings, embedder=embedder, progress=False)
    app = create_app(settings, Assistant.open(settings=settings, embedder=embedder))
    with live_server(app) as base:
        for page in _open_page(browser, base, WIDE):
            page.goto("/?view=documents&dq=evil.md")
            page.locator("#doc-rows button").first.click()
            body = page.locator("#doc-article .article-body")
            expect(body).to_contain_text('<img src=x onerror="window.pwned=1">')
            expect(page.locator("#doc-article h2")).to_contain_text("<img")
            expect(page.locator("#doc-rows")).to_contain_text("<script>")
            assert page.locator("main img, main b, main i, main script").count() == 0
            with page.expect_response("**/v1/ask") as info:
                page.goto("/?q=What+did+the+chairman+speak+about%3F&doc=evil.md")
            wait_answer(page, info.value)
            assert page.locator("main img, main b, main i, main script").count() == 0
            assert page.evaluate("window.pwned") is None
            shot(page, "18-markup-as-text")

            page.goto("/?view=documents")
            info, rows = page.locator("#doc-page-info"), page.locator("#doc-rows tr")
            expect(info).to_have_text("1–20 of 26")
            expect(rows).to_have_count(20)
            expect(page.get_by_role("button", name="Previous")).to_be_disabled()
            page.get_by_role("button", name="Next").click()
            expect(info).to_have_text("21–26 of 26")
            expect(rows).to_have_count(6)
            expect(page.get_by_role("button", name="Next")).to_be_disabled()
            assert "page=2" in page.url
            page.go_back()
            expect(info).to_have_text("1–20 of 26")
            page.get_by_label("Search titles, ids and sources").fill("committee note 1")
            page.get_by_label("Search titles, ids and sources").press("Enter")
            expect(info).to_have_text("1–12 of 12")  # every word: notes 1, 10-19 and 21
