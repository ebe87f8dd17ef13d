"""Turn an article file's decoded text into plain text plus the metadata it states.

    split_front_matter(markdown) → (body, {key: value})
    html_to_text(html) → (text, {"title": …, "date": …}, each only when found)
    normalise_document_text(text) → the text every stored character offset refers to

Invariants:
- Pure and deterministic: no I/O and no state, so the same bytes always give the same text
  (and so the same chunk offsets and citations when an unchanged file is indexed again).
- Markdown front matter is removed only when every line of it is a simple `key: value` (or
  blank, a comment, a YAML list or continuation line); otherwise the text (line endings unified)
  is returned with no metadata. Keys are lower-cased; values are stripped of spaces and quotes.
- HTML keeps the readable article: `_DROP_TAGS` (scripts, styles, head, nav, footer…),
  comments and declarations go; block elements become paragraph or line breaks (a paragraph
  wins where breaks meet); whitespace is collapsed except inside `<pre>`. The title is the
  first `<h1>` left after dropping, else `<title>`. The date (ISO 8601, see
  `rag.ingest.article_dates`) is the first that parses of the page's `<meta>` dates, in the order of
  `_META_DATES` (`article:published_time` first), else of its `<time>` elements left after
  dropping: one marked as the publication time (`pubdate`, `itemprop="datePublished"`) first,
  then the first outside the prose (`<p>`, `<li>`, quotes and tables date events, not the page);
  `datetime` or else the element's text. The private-use characters U+E000–U+E002 mark breaks
  internally, so any already in the input are turned into spaces first.
- `normalise_document_text` is the one normalisation: NFC, CRLF and CR become LF, other control
  characters except tab and newline become spaces, and the ends are stripped.
- Parsers raise on input they cannot handle; `rag.ingest.loading` turns that into one `LoadWarning`
  for the file.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from rag.ingest.article_dates import parse_date

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f]")


def normalise_document_text(text: str) -> str:
    """One fixed normalisation: every character offset stored downstream refers to its output."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub(" ", text).strip()


_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(?P<body>.*?)\n---[ \t]*(?:\n|\Z)", re.DOTALL)
_KEY_VALUE = re.compile(r"^(?P<key>[A-Za-z_][\w-]*)[ \t]*:[ \t]*(?P<value>.*)$")


def split_front_matter(text: str) -> tuple[str, dict[str, str]]:
    """Read simple `key: value` front matter; anything fancier is left in the text untouched."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    match = _FRONT_MATTER.match(text)
    if not match:
        return text, {}
    meta: dict[str, str] = {}
    for line in match["body"].split("\n"):
        if not line.strip() or line.startswith((" ", "\t", "- ", "#")):
            continue  # blank, comment, or a YAML list/continuation we don't need
        kv = _KEY_VALUE.match(line)
        if not kv:
            return text, {}  # not front matter after all (e.g. a leading horizontal rule)
        meta[kv["key"].lower()] = kv["value"].strip().strip("\"'")
    if not meta:
        return text, {}
    return text[match.end() :], meta


_DROP_TAGS = ["script", "style", "noscript", "template", "head", "nav", "footer"]
_PARAGRAPH_TAGS = frozenset(
    {"p", "h1", "h2", "h3", "h4", "h5", "h6", "article", "section", "blockquote", "pre"}
)
_LINE_TAGS = frozenset(
    {"div", "li", "tr", "ul", "ol", "table", "main", "header", "aside", "figure",
     "figcaption", "dl", "dt", "dd", "hr", "caption", "form", "address"}
)  # fmt: skip
_CELL_TAGS = frozenset({"td", "th"})
# Private-use markers stand in for breaks while whitespace is collapsed, then become newlines.
_LINE, _PARA, _BR = "\ue000", "\ue001", "\ue002"
_BREAK_RUN = re.compile(f"[ \\t\\n]*[{_LINE}{_PARA}{_BR}][{_LINE}{_PARA}{_BR} \\t\\n]*")


def html_to_text(html: str) -> tuple[str, dict[str, str]]:
    """Keep the readable article text; block structure survives as line and paragraph breaks."""
    from bs4 import BeautifulSoup  # imported lazily: bs4 is slow to import and rarely needed
    from bs4.element import Comment, Declaration, Doctype, ProcessingInstruction

    html = html.replace(_LINE, " ").replace(_PARA, " ").replace(_BR, " ")
    soup = BeautifulSoup(html, "html.parser")
    page_title = collapse(soup.title.get_text(" ")) if soup.title is not None else ""
    date = _meta_date(soup)  # before <head> goes
    for tag in soup.find_all(_DROP_TAGS):
        tag.decompose()
    h1 = soup.find("h1")  # looked up after dropping <nav> etc., where site logos live
    title = collapse(h1.get_text(" ")) if h1 is not None else ""
    meta = {"title": title or page_title} if title or page_title else {}
    date = date or _time_date(soup)
    if date:
        meta["date"] = date
    junk = (Comment, Declaration, Doctype, ProcessingInstruction)
    for node in soup.find_all(string=lambda s: isinstance(s, junk)):
        node.extract()
    for node in soup.find_all(string=True):
        if node.find_parent("pre") is None:
            node.replace_with(re.sub(r"\s+", " ", str(node)))
    for tag in soup.find_all(True):
        name = tag.name
        if name == "br":
            tag.replace_with(_BR)
        elif name in _PARAGRAPH_TAGS or name in _LINE_TAGS:
            marker = _PARA if name in _PARAGRAPH_TAGS else _LINE
            tag.insert_before(marker)
            tag.insert_after(marker)
        elif name in _CELL_TAGS:
            tag.insert_after(" ")
    text = _BREAK_RUN.sub(_break_for, soup.get_text())
    text = re.sub(r"(?<=\S) {2,}", " ", text)  # spaces where text nodes meet; keeps <pre> indents
    return re.sub(r"[ \t]+\n", "\n", text), meta


# <meta> keys (property, name or itemprop; any case) that state the publication date, best first.
_META_DATES = (
    "article:published_time", "og:article:published_time", "datepublished", "date",
    "pubdate", "publishdate", "publication_date", "dc.date.issued", "dc.date", "dcterms.issued",
    "dcterms.date",
)  # fmt: skip
_PROSE_TAGS = ["p", "li", "blockquote", "q", "td", "th", "dd"]


def _attr(tag: Any, name: str) -> str:
    value = tag.get(name)
    return " ".join(value) if isinstance(value, list) else (value or "")


def _meta_date(soup: Any) -> str | None:
    """The best-ranked `<meta>` publication date that parses."""
    found: dict[str, str] = {}
    for tag in soup.find_all("meta"):
        for key_attr in ("property", "name", "itemprop"):
            key = _attr(tag, key_attr).strip().lower()
            if key in _META_DATES and key not in found:
                date = parse_date(_attr(tag, "content"))
                if date:
                    found[key] = date
    return next((found[k] for k in _META_DATES if k in found), None)


def _time_date(soup: Any) -> str | None:
    """A `<time>` marked as the publication time, else the first one outside the prose."""
    times = soup.find_all("time")
    marked = [
        t for t in times
        if t.has_attr("pubdate") or _attr(t, "itemprop").lower() == "datepublished"
    ]  # fmt: skip
    unmarked = [t for t in times if t.find_parent(_PROSE_TAGS) is None]
    for tag in marked + unmarked:
        date = parse_date(_attr(tag, "datetime") or tag.get_text(" "))
        if date:
            return date
    return None


def _break_for(match: re.Match[str]) -> str:
    """Merge adjacent break markers: any paragraph (or two <br>s) wins over a single newline."""
    run = match.group()
    return "\n\n" if _PARA in run or run.count(_BR) >= 2 else "\n"


def collapse(text: str) -> str:
    return " ".join(text.split())
