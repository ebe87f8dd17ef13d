"""Guess an article's title, source, dateline and date from its text: the `Document`.

    make_document(doc_id, text, meta, sha256, stem) → Document

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
- A date is ISO `YYYY-MM-DD` or None: a partial or impossible date is no date, never a guess.
- Sentences are split by `rag.sentences`, the chunker's own rules. Pure: no I/O, no state.
"""

from __future__ import annotations

import datetime as dt
import re

from rag.formats import collapse
from rag.models import Document
from rag.sentences import split_sentences

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


def make_document(doc_id: str, text: str, meta: dict[str, str], sha: str, stem: str) -> Document:
    """Explicit metadata (front matter, HTML title) wins over what is guessed from the prose."""
    headline, body = _split_headline(text)
    source, dateline, date, lead = _detect_dateline(body)
    title = meta.get("title") or headline or _first_sentence_title(lead) or stem
    return Document(
        id=doc_id,
        title=collapse(title),
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
    lead = collapse(lead)
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
