"""Guess an article's title, source, dateline and date from its text: the `Document`.

    make_document(doc_id, text, meta, sha256, stem, meta_kind) → Document

Invariants:
- Only metadata is derived: `Document.text` is the normalised text exactly as given (its
  headline and dateline stay in it), so chunk offsets and citations refer to the whole file.
- Metadata the file states (front matter, the HTML title) wins over what is guessed from the
  prose. The title falls back from that to a headline line, then the lead's first sentence,
  then the file name's stem; it is whitespace-collapsed.
- Bounded guesses: a first line longer than `HEADLINE_MAX_CHARS` is not a headline, a
  `(MENAFN- …)` source or `PLACE, Date (Agency) --` dateline is looked for only in the first
  `META_SCAN_CHARS` of the body, and a first-sentence title is at most `TITLE_MAX_CHARS`
  characters, cut at a word boundary and ended with "…".
- A date is ISO 8601 — `YYYY-MM-DD`, or `--MM-DD` when the year is not stated — or None, and
  `date_source` says where it was found: the file's metadata (`meta_kind`: `front-matter` or
  `html-meta`), the dateline, or a date stamp in the first sentences (`text`). The rules, the
  order and when a dateline's missing year is inferred are `rag.ingest.article_dates`'. Nothing here
  sees the file, so its mtime is never a date.
- Sentences are split by `rag.ingest.sentences`, the chunker's own rules. Pure: no I/O, no state.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rag.ingest.article_dates import dateline_date, is_date_stamp, parse_date, text_date
from rag.ingest.formats import collapse
from rag.ingest.sentences import split_sentences
from rag.models import DateSource, Document

HEADLINE_MAX_CHARS = 150
TITLE_MAX_CHARS = 80
META_SCAN_CHARS = 300

_HEADING = re.compile(r"^#{1,6}\s+(?P<title>.+?)(?:\s+#+)?\s*$")
_MENAFN = re.compile(r"\(MENAFN-\s*(?P<source>(?:[^()]|\([^()]*\))+?)\s*\)\s*")
_UPPER = "A-ZÀ-ÖØ-Þ"
_DATELINE = re.compile(
    rf"(?P<dateline>(?P<place>[{_UPPER}][{_UPPER}'. -]*[{_UPPER}.])"
    r"(?:,\s*(?P<month>[A-Z][a-z]{2,8})\.?\s+(?P<day>\d{1,2})(?:,\s*(?P<year>\d{4}))?)?)"
    r"\s*\((?P<agency>[^()\n]{1,40})\)\s*(?:--|-|–|—)\s+"
)


def make_document(
    doc_id: str,
    text: str,
    meta: dict[str, str],
    sha: str,
    stem: str,
    meta_kind: DateSource = "front-matter",
) -> Document:
    """Explicit metadata (front matter, HTML title and date) wins over what is guessed from the
    prose. `meta_kind` is where `meta` came from: the source of a date it states."""
    headline, body = _split_headline(text)
    found = _detect_dateline(body)
    title = meta.get("title") or headline or _first_sentence_title(found.lead) or stem
    date, date_source = _date(meta, meta_kind, found)
    return Document(
        id=doc_id,
        title=collapse(title),
        source=meta.get("source") or found.source,
        date=date,
        dateline=found.dateline,
        text=text,
        sha256=sha,
        date_source=date_source,
    )


@dataclass(frozen=True, slots=True)
class _Opening:
    """What the start of the body says: `(MENAFN- X)` / `PLACE, Date (Agency) --` prefixes."""

    source: str | None
    dateline: str | None
    date: str | None  # the dateline's date (ISO, or --MM-DD), see rag.ingest.article_dates
    lead: str  # the first paragraph without those prefixes (a first-sentence title's)
    rest: str  # the body after those prefixes (where a date stamp is looked for)


def _date(
    meta: dict[str, str], meta_kind: DateSource, found: _Opening
) -> tuple[str | None, DateSource | None]:
    """The first of: the stated date, the dateline's, a date stamp in the first sentences."""
    stated = parse_date(meta["date"]) if meta.get("date") else None
    if stated:
        return stated, meta_kind
    if found.date:
        return found.date, "dateline"
    stamped = text_date(found.rest)
    return (stamped, "text") if stamped else (None, None)


def _split_headline(text: str) -> tuple[str | None, str]:
    """Separate a headline line from the body; the body is where datelines are looked for.
    A line that is only a date ("9 February 2024") is not a headline."""
    first, _, rest = text.partition("\n")
    first = first.strip()
    if len(first) > HEADLINE_MAX_CHARS:
        return None, text
    heading = _HEADING.match(first)
    if heading:
        return heading["title"].strip(), rest
    if first and not first.endswith(".") and rest.startswith("\n") and not is_date_stamp(first):
        return first, rest
    return None, text


def _detect_dateline(body: str) -> _Opening:
    """Find `(MENAFN- X)` and `PLACE, Date (Agency) --` near the start of the body."""
    source = dateline = date = None
    start = body.lstrip()
    lines = start[:META_SCAN_CHARS].split("\n")
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
            rest = start[offset + match.end() :]
            date = dateline_date(match["month"], match["day"], match["year"], rest)
            pos = match.end()
        if source:
            rest = start[offset + pos :]
            return _Opening(source, dateline, date, rest.split("\n", 1)[0], rest)
        offset += len(line) + 1
    return _Opening(None, None, None, _first_paragraph(body), body)


def _first_paragraph(body: str) -> str:
    """The first non-blank line that is not only a date (a date line is no title)."""
    lines = (line for line in body.split("\n") if line.strip() and not is_date_stamp(line))
    return next(lines, "")


def _first_sentence_title(lead: str) -> str:
    """A title for articles without a headline: the first sentence, cut at a word boundary."""
    lead = collapse(lead)
    sentences = split_sentences(lead)  # the same sentence rules as the chunker
    sentence = lead[: sentences[0].end].strip() if sentences else lead.strip()
    if len(sentence) <= TITLE_MAX_CHARS:
        return sentence.removesuffix(".")
    cut = sentence[: TITLE_MAX_CHARS - 1]
    if sentence[TITLE_MAX_CHARS - 1] != " " and " " in cut:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:-–—") + "…"
