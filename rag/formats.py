"""Turn an article file's decoded text into plain text plus the metadata it states.

    split_front_matter(markdown) → (body, {key: value})
    html_to_text(html) → (text, {"title": …} or {})
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
  first `<h1>` left after dropping, else `<title>`. The private-use characters U+E000–U+E002
  mark breaks internally, so any already in the input are turned into spaces first.
- `normalise_document_text` is the one normalisation: NFC, CRLF and CR become LF, other control
  characters except tab and newline become spaces, and the ends are stripped.
- Parsers raise on input they cannot handle; `rag.loading` turns that into one `LoadWarning`
  for the file.
"""

from __future__ import annotations

import re
import unicodedata

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
    for tag in soup.find_all(_DROP_TAGS):
        tag.decompose()
    h1 = soup.find("h1")  # looked up after dropping <nav> etc., where site logos live
    title = collapse(h1.get_text(" ")) if h1 is not None else ""
    meta = {"title": title or page_title} if title or page_title else {}
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


def _break_for(match: re.Match[str]) -> str:
    """Merge adjacent break markers: any paragraph (or two <br>s) wins over a single newline."""
    run = match.group()
    return "\n\n" if _PARA in run or run.count(_BR) >= 2 else "\n"


def collapse(text: str) -> str:
    return " ".join(text.split())
