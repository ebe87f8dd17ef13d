"""An article's publication date, and where it was found.

    parse_date(value) → "YYYY-MM-DD" | "--MM-DD" | None      (a stated value: front matter, HTML)
    dateline_date(month, day, year, rest) → the dateline's date, its year inferred when certain
    text_date(rest) → a date stamp in the first sentences of the article
    full_date(iso) → datetime.date | None                      (None: undated or partial)

Invariants:
- A date is ISO 8601: `YYYY-MM-DD`, or `--MM-DD` when only the month and day are known (the
  reduced form of ISO 8601:2000 for a date without its year; XML Schema's gMonthDay). Never
  a guess: an impossible date (Feb 30) or a bare month or year is no date, and nothing here
  looks at a file, so a file's mtime can never become a publication date.
- Provenance, first found wins (see `rag.ingest.article_meta.make_document`): front matter `date:`
  (`front-matter`) or the HTML page's `article:published_time` / `<meta name="date">` / `<time>`
  (`html-meta`), then the dateline ("CAIRO, Feb 9 (KUNA) --": `dateline`), then a full date
  stamped in the first `TEXT_SENTENCES` sentences (`text`).
- A dateline without a year keeps its year only when the text makes it certain: the first
  `TEXT_SENTENCES` sentences after the dateline state that same month and day with a year
  (one year, however often). A year alone ("inaugurated in 2021"), a weekday ("on Friday")
  or two different years leave the date partial.
- A text date is a stamp, not prose: it opens its sentence (after an optional weekday, bracket
  or upper-case place: "LONDON, 9 Feb 2024 -") and is followed by the sentence's end, a dash,
  colon, comma or a time ("Feb 9, 2024 — The…", a line "9 February 2024"), or it follows a
  label that opens the sentence ("Published: …", "posted on …"). A date inside the
  prose ("met on 14 may 1870", "playing switzerland on 12 october 2005") dates an event, not
  the article; an "Updated: …" stamp dates an edit. A number before a time zone is a time,
  not a year ("saturday 26 february 1400 gmt").
- Pure and case-insensitive (the BBC set is lower-cased): regexes without nested repeats.
"""

from __future__ import annotations

import datetime as dt
import re

from rag.ingest.sentences import split_sentences

TEXT_SENTENCES = 3  # how many sentences after the headline and dateline may hold a date
TEXT_SCAN_CHARS = 1200  # and within how many characters (bounds the sentence splitting)

MONTHS: dict[str, int] = {
    name: number
    for number, names in enumerate(
        ("jan january", "feb february", "mar march", "apr april", "may", "jun june",
         "jul july", "aug august", "sep sept september", "oct october", "nov november",
         "dec december"),
        start=1,
    )
    for name in names.split()
}  # fmt: skip

_MONTH = "|".join(sorted(MONTHS, key=len, reverse=True))
_WEEKDAY = r"(?:mon|tue|tues|wed|wednes|thu|thur|thurs|fri|sat|satur|sun)(?:day)?"
_TIME_ZONE = r"(?:gmt|bst|utc|cet|cest|eet|est|edt|cst|cdt|pst|pdt|hrs|hours|h|am|pm)\b"
# A full date: "Feb 9, 2024", "February 9th 2024", "9 February 2024", "9th of Feb. 2024",
# "2024-02-09"; a weekday before it belongs to it. The year is not a time ("1400 gmt").
_FULL_DATE = re.compile(
    rf"(?:\b{_WEEKDAY}\.?,?\s+)?"
    rf"(?:(?<!\d)(?P<d1>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?(?P<m1>{_MONTH})\b\.?,?"
    rf"|\b(?P<m2>{_MONTH})\b\.?\s+(?P<d2>\d{{1,2}})(?:st|nd|rd|th)?\b,?)"
    rf"\s+(?P<year>\d{{4}})\b(?!\s*{_TIME_ZONE}|[:.]\d)"
    r"|(?<![\d-])(?P<iso>\d{4}-\d{2}-\d{2})(?![\d-])",
    re.IGNORECASE,
)
# What may follow a stamp that opens its sentence: nothing, a separator, or a time of day.
_AFTER_STAMP = re.compile(r"\s*(?:$|[-–—:|,;.)]|\d{1,2}[:.]\d{2})")
# What may precede a stamp in its sentence: nothing but opening brackets or quotes, an upper-case
# place ("LONDON, "), or a label ("Published: ", "posted on ").
# All a stamp line may hold after the date: separators and a time of day ("10:00 GMT").
_STAMP_TAIL = re.compile(r"[\s.,;:|–—-]*(?:\d{1,2}[:.]\d{2}(?:\s*[A-Za-z]{1,4})?)?[\s.]*")
_OPENERS = re.compile(r"[\s(\[\"'“‘]*")
_PLACE = re.compile(r"[A-ZÀ-ÖØ-Þ][A-ZÀ-ÖØ-Þ'. -]*,\s*")
_LABEL = re.compile(
    r"[\s(\[]*(?:first\s+)?(?:published|posted|dated|issued|released|date)"
    r"(?:\s+(?:on|at))?\s*[:\-–—]?\s*",
    re.IGNORECASE,
)


def parse_date(value: str) -> str | None:
    """A stated date (front matter, HTML meta): an ISO date or datetime ("2024-02-09T10:00Z"),
    a written full date ("Fri, 09 Feb 2024 10:00 GMT"), or a month and day ("Feb 9" →
    "--02-09"). Anything else, or an impossible date, is None."""
    value = value.strip()
    if re.match(r"\d{4}-\d{2}-\d{2}(?:$|[T ])", value):
        return _iso(int(value[:4]), int(value[5:7]), int(value[8:10]))
    if re.fullmatch(r"--\d{2}-\d{2}", value):
        return _iso(None, int(value[2:4]), int(value[5:7]))
    match = _FULL_DATE.search(value)
    if match:
        return _match_iso(match)
    partial = re.fullmatch(
        rf"(?:(?P<d1>\d{{1,2}})\s+(?P<m1>{_MONTH})|(?P<m2>{_MONTH})\.?\s+(?P<d2>\d{{1,2}}))",
        value,
        re.IGNORECASE,
    )
    if partial is None:
        return None
    month = MONTHS[(partial["m1"] or partial["m2"]).lower()]
    return _iso(None, month, int(partial["d1"] or partial["d2"]))


def dateline_date(month: str | None, day: str | None, year: str | None, rest: str) -> str | None:
    """The date of a dateline ("Feb 9", "May 3, 2021"): full when it gives its year, or when
    the first sentences of `rest` (the text after it) state the same month and day with one
    year; else `--MM-DD`; None when it names no valid date."""
    if not month or not day or month.lower() not in MONTHS:
        return None
    m, d = MONTHS[month.lower()], int(day)
    if year:
        return _iso(int(year), m, d)
    if _iso(None, m, d) is None:
        return None
    stated = (_match_iso(x) for s in _first_sentences(rest) for x in _FULL_DATE.finditer(s))
    years = {iso[:4] for iso in stated if iso is not None and iso[5:] == f"{m:02d}-{d:02d}"}
    if len(years) == 1:
        return _iso(int(years.pop()), m, d)
    return _iso(None, m, d)


def text_date(rest: str) -> str | None:
    """The first date stamp (see the module docstring) in the first sentences of `rest`."""
    for sentence in _first_sentences(rest):
        for match in _FULL_DATE.finditer(sentence):
            if _is_stamp(sentence, match):
                return _match_iso(match)
    return None


def full_date(value: str | None) -> dt.date | None:
    """A document date as a `datetime.date`, or None when it is missing or partial (a date
    without its year cannot be compared with a date range)."""
    if not value or value.startswith("--"):
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return None


def is_date_stamp(line: str) -> bool:
    """A line that is a date stamp and nothing more ("9 February 2024", "Published: Feb 9,
    2024 10:00 GMT"): not a headline."""
    match = _FULL_DATE.search(line)
    if match is None or not _is_stamp(line, match):
        return False
    return _STAMP_TAIL.fullmatch(line, match.end()) is not None


# ---------------------------------------------------------------------------- helpers


def _first_sentences(rest: str) -> list[str]:
    """The first `TEXT_SENTENCES` sentences of `rest` (within its first TEXT_SCAN_CHARS)."""
    head = rest.lstrip()[:TEXT_SCAN_CHARS]
    return [head[s.start : s.end] for s in split_sentences(head)[:TEXT_SENTENCES]]


def _is_stamp(sentence: str, match: re.Match[str]) -> bool:
    """The date opens the sentence and is followed by a separator, or follows a label."""
    before = sentence[: match.start()]
    if _LABEL.fullmatch(before):
        return True
    opens = _OPENERS.fullmatch(before) or _PLACE.fullmatch(before)
    return bool(opens) and _AFTER_STAMP.match(sentence, match.end()) is not None


def _match_iso(match: re.Match[str]) -> str | None:
    if match["iso"]:
        value = match["iso"]
        return _iso(int(value[:4]), int(value[5:7]), int(value[8:10]))
    month = MONTHS[(match["m1"] or match["m2"]).lower()]
    return _iso(int(match["year"]), month, int(match["d1"] or match["d2"]))


def _iso(year: int | None, month: int, day: int) -> str | None:
    """`YYYY-MM-DD`, or `--MM-DD` without a year; None for an impossible date."""
    try:
        when = dt.date(2000 if year is None else year, month, day)  # 2000: Feb 29 exists
    except ValueError:
        return None
    return f"--{month:02d}-{day:02d}" if year is None else when.isoformat()
