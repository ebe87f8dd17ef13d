"""Shared by the browser tests (tests/test_web*.py): Debian's headless Chromium driven by
Playwright, a real uvicorn server on loopback over the seeds index, and helpers to ask, read
the streamed answer and save screenshots.

No browser is downloaded: the tests use the `chromium` on PATH (`make setup` installs the Debian
package) and fail with one line when there is none. Every state the page can be in is saved as a
screenshot under tests/artifacts/web/ (gitignored): look at them after changing the page. Every
page fails its test on any uncaught script error or Content-Security-Policy violation, and every
screenshot first checks that all visible text has WCAG AA contrast.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from rag.assistant import Assistant
from rag.settings import Settings
from server.app import create_app
from server.testing import live_server

try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
except ImportError:  # reported by the `browser` fixture as one line
    sync_playwright = None  # type: ignore[assignment]
    Browser = Page = Any  # type: ignore[misc,assignment]
    expect = None  # type: ignore[assignment]

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


def open_page(browser: Browser, base: str, viewport: dict[str, int]) -> Iterator[Page]:
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
    yield from open_page(browser, base_url, WIDE)


@pytest.fixture()
def phone(browser: Browser, base_url: str) -> Iterator[Page]:
    yield from open_page(browser, base_url, PHONE)


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


def tab_to(page: Page, predicate: str, limit: int = 40) -> None:
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate(f"(() => {{ const n = document.activeElement; return {predicate}; }})()"):
            return
    raise AssertionError(f"Tab never reached an element where {predicate}")


def no_horizontal_scroll(page: Page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"page is {width}px wide on a {PHONE['width']}px screen"
