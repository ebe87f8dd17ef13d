"""Candidate answer phrases of one sentence, with exact offsets and no model.

Four kinds: capitalised name sequences joined by connectors ("National Assembly of
Azerbaijan"; "place" when a cue such as "in" or "capital" precedes them), dates ("Feb 9, 2024",
"Friday", "1066", "10th century"), numbers with their scale and unit ("3.5 million people"),
and "thing" phrases: runs of content words between function words, punctuation and words that
are rarely nouns. A span found as several kinds keeps the most specific (date > number > name
> thing).

Invariant: `text[c.start - offset : c.end - offset] == c.text` for every candidate, and
`c.text` is non-empty with no surrounding whitespace.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rag.retrieve.lexical import STOPWORDS

Kind = str  # "name", "place", "date", "number" or "thing"

TOKEN = re.compile(r"\d+(?:[.,:]\d+)*(?:st|nd|rd|th|s)?|\w+(?:[-'’]\w+)*|[^\w\s]")
_MONTH = r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sept?(?:ember)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?"  # noqa: E501
_DATE = re.compile(
    rf"\b(?:{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+\d{{4}})?"
    rf"|\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH}(?:,?\s+\d{{4}})?"
    rf"|{_MONTH}\s+\d{{4}}"
    r"|(?:1[0-9]|20)\d\d(?:s|\s*[-–]\s*\d{2,4})?"
    r"|(?:Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)day"
    r"|\d{1,2}(?:st|nd|rd|th)[\s-]century"
    r"|(?:first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|eleventh|twelfth|"
    r"thirteenth|fourteenth|fifteenth|sixteenth|seventeenth|eighteenth|nineteenth|twentieth)"
    r"[\s-]century)\b",
    re.I,
)
_NUMBER_WORD = (
    r"one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|"
    r"sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|"
    r"hundred|thousand|dozen|half"
)
_SCALE = r"million|billion|trillion|thousand|hundred"
_UNIT = (
    r"percent|per\s+cent|%|km|kilometres?|kilometers?|"
    r"miles?|metres?|meters?|feet|foot|inches|kg|kilograms?|tons?|tonnes?|pounds|dollars|euros|"
    r"years?|months?|weeks?|days?|hours?|minutes?|seconds?|degrees?|acres?|square\s+\w+|"
    r"people|members|times|votes|seats|men|soldiers|troops|students|species|languages"
)
_NUMBER = re.compile(
    rf"(?:[$£€]\s?)?\b(?:\d[\d,]*(?:\.\d+)?|(?:{_NUMBER_WORD})(?:[\s-](?:{_NUMBER_WORD}))*)\b"
    rf"(?:\s(?:{_SCALE})\b)?(?:\s?(?:{_UNIT})\b)?(?:\s?%)?",
    re.I,
)
_CONNECTORS = frozenset("of the de du da van von al el bin ibn la le y".split())  # noqa: SIM905
# "American", "Iranian", "Chinese", "Kuwaiti": adjectives a question may add that the text lacks
DEMONYM = re.compile(r"(?:an|ese|ish|i)(?:['’]s)?$")
_PLACE_CUES = frozenset({"in", "at", "from", "near", "capital", "city", "town", "to"})
_TITLES = frozenset("Dr Mr Mrs Ms Prof Sir St Gen Col Capt Lt Sgt Rev Jr Sr".split())  # noqa: SIM905
_VERBISH = re.compile(r"^[a-z]{3,}(?:ed|ing|ly)$")
# common words that are rarely an answer on their own: adverbs, modals, verbs, adjectives
_NOT_NOUN = frozenset(
    """
    also however although though since whether may might must can could would should will shall
    earlier later often usually generally particularly especially notably similarly previously
    recently currently still even just only mainly largely typically originally eventually
    finally first new old many much several various another different same such own each every
    known called named used using based include includes made make makes became become becomes
    given take taken took see seen show shown found find considered according due able possible
    whose thus therefore yet now well like unlike within without among across along around upon
    per via either neither both less least most more further rather quite almost already perhaps
    instead otherwise meanwhile hence whereas
    """.split()  # noqa: SIM905
)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A phrase `text[start:end]` of one sentence (absolute offsets in its document)."""

    start: int
    end: int
    text: str
    kind: Kind  # "name", "date", "number", "place" or "thing"
    score: float = 0.0
    near: float = 0.0


def tokens(text: str) -> list[tuple[int, int, str]]:
    return [(m.start(), m.end(), m.group(0)) for m in TOKEN.finditer(text)]


def _is_cap(tok: str) -> bool:
    if tok in _TITLES:
        return False
    return tok[:1].isupper() or (tok[:1].isdigit() and any(c.isalpha() for c in tok))


def _name_spans(toks: list[tuple[int, int, str]]) -> list[tuple[int, int]]:
    """Maximal runs of capitalised words, joined by connectors ("Duke of Normandy")."""
    spans = []
    i, n = 0, len(toks)
    while i < n:
        low = toks[i][2].lower()
        first = i == 0 or not toks[i - 1][2][0].isalnum()  # capitalised by position only?
        if not _is_cap(toks[i][2]) or low in STOPWORDS or (first and low in _NOT_NOUN):
            i += 1
            continue
        j = i
        while j + 1 < n:
            nxt = toks[j + 1][2]
            if _is_cap(nxt):
                j += 1
            elif nxt.lower() in _CONNECTORS and j + 2 < n and _is_cap(toks[j + 2][2]):
                j += 2
            else:
                break
        spans.append((i, j))
        i = j + 1
    return spans


def _breaks_phrase(tok: str) -> bool:
    low = tok.lower()
    return (
        low in STOPWORDS
        or low in _NOT_NOUN
        or not tok[0].isalnum()
        or _VERBISH.match(low) is not None
        or tok in _TITLES
    )


def _thing_spans(toks: list[tuple[int, int, str]]) -> list[tuple[int, int]]:
    """Runs of content words between function words and punctuation (rough noun phrases)."""
    spans = []
    i, n = 0, len(toks)
    while i < n:
        if _breaks_phrase(toks[i][2]):
            i += 1
            continue
        j = i
        while j + 1 < n:
            if _breaks_phrase(toks[j + 1][2]):
                break
            j += 1
        spans.append((i, min(j, i + 5)))
        i = j + 1
    return spans


def candidates(
    text: str, offset: int = 0, toks: list[tuple[int, int, str]] | None = None
) -> list[Candidate]:
    """Every candidate phrase of one sentence; offsets are `offset` + positions in `text`.
    `toks`: `tokens(text)` when the caller has it already."""
    out: dict[tuple[int, int], Candidate] = {}

    def add(s: int, e: int, kind: Kind) -> None:  # later kinds are more specific: they win
        out[(s, e)] = Candidate(offset + s, offset + e, text[s:e], kind)

    toks = tokens(text) if toks is None else toks
    for i, j in _thing_spans(toks):
        add(toks[i][0], toks[j][1], "thing")
    for i, j in _name_spans(toks):
        before = {t[2].lower() for t in toks[max(0, i - 3) : i]}
        kind = "place" if before & _PLACE_CUES else "name"
        add(toks[i][0], toks[j][1], kind)
    dates = [(m.start(), m.end()) for m in _DATE.finditer(text)]
    for m in _NUMBER.finditer(text):
        s = m.start() + len(m.group(0)) - len(m.group(0).lstrip())
        if m.group(0).lower() == "one":  # "one of its founders": a pronoun, not a count
            continue
        if s < m.end() and not any(a <= s and m.end() <= b for a, b in dates):
            add(s, m.end(), "number")  # a number inside a date ("Feb 9") is the date's
    for a, b in dates:
        add(a, b, "date")
    return list(out.values())
