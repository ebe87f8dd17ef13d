"""The documents and index views, a phone-sized screen, the server routes behind the page, and
markup inside an article staying text — in a real browser (see tests/webpage.py)."""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from rag.assistant import Assistant
from rag.embedding import Embedder
from rag.index.indexing import build_index
from rag.settings import Settings
from server.app import create_app
from server.testing import live_server
from server.web import ASSETS
from tests import webpage
from tests.webpage import (
    QUESTION,
    ROOT,
    WIDE,
    Browser,
    Page,
    ask,
    assert_cited_span,
    expect,
    no_horizontal_scroll,
    open_page,
    shot,
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
    # A citation's link (what opening [n] in a new tab loads) marks the span in the article.
    page.goto(f"/?view=documents&open={doc['id']}&start=337&end=593")
    mark = page.locator("#doc-article mark")
    expect(mark).to_be_in_viewport()
    assert mark.evaluate("n => n.textContent") == full["text"][337:593]
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
        for page in open_page(browser, base, WIDE):
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
