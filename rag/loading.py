"""Turn a folder of articles into normalised `Document`s.

Everything downstream (chunk offsets, citations, incremental re-indexing) depends on this
module producing the same text for the same bytes, so it is deterministic: files are read in
sorted order, text is normalised one fixed way, and a bad file becomes a `LoadWarning` rather
than an exception — one broken article must not stop a corpus from being indexed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import re
import stat
import unicodedata
from pathlib import Path

from rag.errors import CorpusError
from rag.models import Document, LoadWarning
from rag.sentences import split_sentences

logger = logging.getLogger(__name__)

TEXT_EXTENSIONS = frozenset({".txt"})
MARKDOWN_EXTENSIONS = frozenset({".md", ".markdown"})
HTML_EXTENSIONS = frozenset({".html", ".htm"})
EXTENSIONS = TEXT_EXTENSIONS | MARKDOWN_EXTENSIONS | HTML_EXTENSIONS

BINARY_SNIFF_BYTES = 8192
BINARY_CONTROL_RATIO = 0.30
HEADLINE_MAX_CHARS = 150
TITLE_MAX_CHARS = 80
META_SCAN_CHARS = 300
_OUTSIDE = "symlink points outside the seeds directory; skipped"

# ---------------------------------------------------------------------------------------------
# Finding files
# ---------------------------------------------------------------------------------------------


def scan_files(seeds_dir: Path) -> list[Path]:
    """Candidate article paths, sorted by document id so every run sees the same order."""
    return _scan(seeds_dir)[0]


def _scan(seeds_dir: Path) -> tuple[list[Path], list[LoadWarning]]:
    """Walk by hand (not `rglob`) so symlinks can be vetted and directory cycles broken."""
    root = seeds_dir.resolve()
    found: list[Path] = []
    warnings: list[LoadWarning] = []
    visited: set[Path] = {root}
    pending: list[Path] = [seeds_dir]
    while pending:
        directory = pending.pop()
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            warnings.append(_warn(_doc_id(directory, seeds_dir), _os_reason(exc)))
            continue
        for entry in entries:
            path = Path(entry.path)
            if entry.name.startswith("."):
                continue
            is_link = entry.is_symlink()
            try:
                is_dir = entry.is_dir()  # follows symlinks
            except OSError:
                is_dir = False
            if not is_dir and path.suffix.lower() not in EXTENSIONS:
                continue
            target = path.resolve()
            if is_link and not target.is_relative_to(root):
                warnings.append(_warn(_doc_id(path, seeds_dir), _OUTSIDE))
                continue
            if is_dir:
                if target not in visited:
                    visited.add(target)
                    pending.append(path)
            else:
                found.append(path)
    found.sort(key=lambda p: _doc_id(p, seeds_dir))
    return found, warnings


def _doc_id(path: Path, seeds_dir: Path) -> str:
    """Ids are relative POSIX paths so they are stable across machines and operating systems."""
    try:
        rel = path.relative_to(seeds_dir)
    except ValueError:
        rel = Path(os.path.relpath(path.absolute(), seeds_dir.absolute()))
    return rel.as_posix()


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def load_documents(seeds_dir: Path) -> tuple[list[Document], list[LoadWarning]]:
    """Load every usable article; a corpus with none is a setup mistake, so that raises."""
    seeds_dir = Path(seeds_dir)
    if not seeds_dir.is_dir():
        raise CorpusError(f"seeds directory not found: {seeds_dir} (create it or pass --seeds DIR)")
    paths, warnings = _scan(seeds_dir)
    documents: list[Document] = []
    for path in paths:
        document, file_warnings = _load(path, seeds_dir)
        warnings.extend(file_warnings)
        if document is not None:
            documents.append(document)
    if not documents:
        raise CorpusError(f"no articles found in {seeds_dir}: add .txt, .md or .html files")
    warnings.sort(key=lambda w: w.path)
    return documents, warnings


def load_document(path: Path, seeds_dir: Path) -> Document | LoadWarning:
    """Load one file (e.g. when a watcher sees it change); a warning stands in for a skip.

    A document whose bad bytes were replaced is still returned; its warning is only logged.
    Use `load_documents` to collect those warnings too.
    """
    document, warnings = _load(Path(path), Path(seeds_dir))
    return document if document is not None else warnings[0]


def _load(path: Path, seeds_dir: Path) -> tuple[Document | None, list[LoadWarning]]:
    """The single code path for one file, returning a document and/or warnings, never raising."""
    doc_id = _doc_id(path, seeds_dir)
    if not path.resolve().is_relative_to(seeds_dir.resolve()):
        return None, [_warn(doc_id, _OUTSIDE)]
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            return None, [_warn(doc_id, "not a regular file; skipped")]
        raw = path.read_bytes()
    except OSError as exc:
        return None, [_warn(doc_id, _os_reason(exc))]

    if b"\x00" in raw[:BINARY_SNIFF_BYTES]:
        return None, [_warn(doc_id, "binary file; skipped")]
    body = raw.removeprefix(b"\xef\xbb\xbf")
    warnings: list[LoadWarning] = []
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = body.decode("utf-8", errors="replace")
        warnings.append(LoadWarning(doc_id, "invalid UTF-8 bytes replaced"))
    if _looks_binary(text[:BINARY_SNIFF_BYTES]):
        return None, [_warn(doc_id, "binary file; skipped")]

    suffix = path.suffix.lower()
    meta: dict[str, str] = {}
    try:
        if suffix in HTML_EXTENSIONS:
            text, meta = _html_to_text(text)
        elif suffix in MARKDOWN_EXTENSIONS:
            text, meta = _split_front_matter(text)
    except Exception as exc:  # a parser bug on one odd file must not stop the whole corpus
        return None, [_warn(doc_id, f"could not parse: {exc}")]
    text = normalise_document_text(text)
    if not text:
        return None, [_warn(doc_id, "empty; skipped")]

    for warning in warnings:
        logger.warning("%s", warning)
    document = _make_document(doc_id, text, meta, hashlib.sha256(raw).hexdigest(), path.stem)
    return document, warnings


def _warn(path: str, reason: str) -> LoadWarning:
    """Warnings are logged where they are made so a caller that drops them still leaves a trace."""
    warning = LoadWarning(path, reason)
    logger.warning("%s", warning)
    return warning


def _os_reason(exc: OSError) -> str:
    return f"could not read: {exc.strerror or exc}; skipped"


def _looks_binary(sample: str) -> bool:
    """Catch binaries without NULs (and wrong encodings) before they pollute the index."""
    if not sample:
        return False
    odd = sum(1 for c in sample if (ord(c) < 32 and c not in "\n\r\t\f\v") or c == "\ufffd")
    return odd / len(sample) > BINARY_CONTROL_RATIO


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f]")


def normalise_document_text(text: str) -> str:
    """One fixed normalisation: every character offset stored downstream refers to its output."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub(" ", text).strip()


# ---------------------------------------------------------------------------------------------
# Formats
# ---------------------------------------------------------------------------------------------

_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(?P<body>.*?)\n---[ \t]*(?:\n|\Z)", re.DOTALL)
_KEY_VALUE = re.compile(r"^(?P<key>[A-Za-z_][\w-]*)[ \t]*:[ \t]*(?P<value>.*)$")


def _split_front_matter(text: str) -> tuple[str, dict[str, str]]:
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


def _html_to_text(html: str) -> tuple[str, dict[str, str]]:
    """Keep the readable article text; block structure survives as line and paragraph breaks."""
    from bs4 import BeautifulSoup  # imported lazily: bs4 is slow to import and rarely needed
    from bs4.element import Comment, Declaration, Doctype, ProcessingInstruction

    html = html.replace(_LINE, " ").replace(_PARA, " ").replace(_BR, " ")
    soup = BeautifulSoup(html, "html.parser")
    page_title = _collapse(soup.title.get_text(" ")) if soup.title is not None else ""
    for tag in soup.find_all(_DROP_TAGS):
        tag.decompose()
    h1 = soup.find("h1")  # looked up after dropping <nav> etc., where site logos live
    title = _collapse(h1.get_text(" ")) if h1 is not None else ""
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


def _collapse(text: str) -> str:
    return " ".join(text.split())


# ---------------------------------------------------------------------------------------------
# Title, source, dateline
# ---------------------------------------------------------------------------------------------

_HEADING = re.compile(r"^#{1,6}\s+(?P<title>.+?)(?:\s+#+)?\s*$")
_MENAFN = re.compile(r"\(MENAFN-\s*(?P<source>(?:[^()]|\([^()]*\))+?)\s*\)\s*")
_UPPER = "A-ZÀ-ÖØ-Þ"
_DATELINE = re.compile(
    rf"(?P<dateline>(?P<place>[{_UPPER}][{_UPPER}'. -]*[{_UPPER}.])"
    r"(?:,\s*(?P<month>[A-Z][a-z]{2,8})\.?\s+(?P<day>\d{1,2})(?:,\s*(?P<year>\d{4}))?)?)"
    r"\s*\((?P<agency>[^()\n]{1,40})\)\s*(?:--|-|–|—)\s+"
)
_MONTHS = {
    name: number
    for number, names in enumerate(
        ("jan january", "feb february", "mar march", "apr april", "may", "jun june",
         "jul july", "aug august", "sep sept september", "oct october", "nov november",
         "dec december"),
        start=1,
    )
    for name in names.split()
}  # fmt: skip


def _make_document(doc_id: str, text: str, meta: dict[str, str], sha: str, stem: str) -> Document:
    """Explicit metadata (front matter, HTML title) wins over what is guessed from the prose."""
    headline, body = _split_headline(text)
    source, dateline, date, lead = _detect_dateline(body)
    title = meta.get("title") or headline or _first_sentence_title(lead) or stem
    return Document(
        id=doc_id,
        title=_collapse(title),
        source=meta.get("source") or source,
        date=(_parse_date(meta["date"]) if meta.get("date") else None) or date,
        dateline=dateline,
        text=text,
        sha256=sha,
    )


def _split_headline(text: str) -> tuple[str | None, str]:
    """Separate a headline line from the body; the body is where datelines are looked for."""
    first, _, rest = text.partition("\n")
    first = first.strip()
    if len(first) > HEADLINE_MAX_CHARS:
        return None, text
    heading = _HEADING.match(first)
    if heading:
        return heading["title"].strip(), rest
    if first and not first.endswith(".") and rest.startswith("\n"):
        return first, rest
    return None, text


def _detect_dateline(body: str) -> tuple[str | None, str | None, str | None, str]:
    """Find `(MENAFN- X)` and `PLACE, Date (Agency) --` near the start of the body.

    Returns source, dateline, ISO date and the first paragraph with those prefixes removed,
    which is what a first-sentence title is cut from.
    """
    source = dateline = date = None
    lines = body.lstrip()[:META_SCAN_CHARS].split("\n")
    offset = 0
    for line in lines:
        if not line.strip():
            offset += len(line) + 1
            continue
        pos = 0
        menafn = _MENAFN.match(line)
        if menafn:
            source, pos = menafn["source"].strip(), menafn.end()
        match = _DATELINE.match(line, pos)
        if match:
            source = source or match["agency"].strip()
            dateline = match["dateline"].strip()
            if match["year"]:
                date = _parse_date(f"{match['month']} {match['day']}, {match['year']}")
            pos = match.end()
        if source:
            lead = body.lstrip()[offset + pos :].split("\n", 1)[0]
            return source, dateline, date, lead
        offset += len(line) + 1
    return None, None, None, _first_paragraph(body)


def _first_paragraph(body: str) -> str:
    return next((line for line in body.split("\n") if line.strip()), "")


def _first_sentence_title(lead: str) -> str:
    """A title for articles without a headline: the first sentence, cut at a word boundary."""
    lead = _collapse(lead)
    sentences = split_sentences(lead)  # the same sentence rules as the chunker
    sentence = lead[: sentences[0].end].strip() if sentences else lead.strip()
    if len(sentence) <= TITLE_MAX_CHARS:
        return sentence.removesuffix(".")
    cut = sentence[: TITLE_MAX_CHARS - 1]
    if sentence[TITLE_MAX_CHARS - 1] != " " and " " in cut:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:-–—") + "…"


def _parse_date(value: str) -> str | None:
    """Accept ISO dates and "Month Day, Year" / "Day Month Year"; anything partial is no date."""
    value = value.strip()
    try:
        return dt.date.fromisoformat(value[:10]).isoformat()
    except ValueError:
        pass
    words = re.findall(r"[A-Za-z]+|\d+", value)
    if len(words) != 3:
        return None
    month = next((_MONTHS.get(w.lower()) for w in words if w.isalpha()), None)
    numbers = [int(w) for w in words if w.isdigit()]
    if month is None or len(numbers) != 2:
        return None
    day, year = (numbers[0], numbers[1]) if numbers[1] > 31 else (numbers[1], numbers[0])
    try:
        return dt.date(year, month, day).isoformat()
    except ValueError:
        return None
