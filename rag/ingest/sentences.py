"""A fast, deterministic, regex-based sentence splitter that keeps exact character offsets.

Chunks are built from whole sentences and citations quote `document.text[start:end]`, so the
splitter never rewrites text: it only decides where sentences end. It has no model and no
language data beyond a short abbreviation list, which keeps indexing thousands of articles
cheap and the output identical from run to run.

Every regex here is linear: runs of terminal punctuation are matched only from their first
character (a look-behind) with possessive quantifiers, so no input makes them backtrack.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Sentence", "split_sentences"]


@dataclass(frozen=True, slots=True)
class Sentence:
    """One sentence: `text[start:end]`, stripped of surrounding whitespace, never empty."""

    start: int
    end: int
    paragraph: int  # index of the paragraph it belongs to (0-based, consecutive)


_TERMINALS = ".!?…"
_CLOSERS = "”\"’')]}»"
_OPENERS = "“\"‘'([{«„"

# Terminal punctuation (+ closing quotes/brackets) followed by whitespace. The look-behind makes a
# run of "....." match only at its first dot; possessive quantifiers forbid backtracking.
_PUNCT_RE = re.compile(
    rf"(?<![{re.escape(_TERMINALS)}])[{re.escape(_TERMINALS)}]++[{re.escape(_CLOSERS)}]*+(?=\s)"
)
# A run of line breaks with only whitespace between them: one "\n" is a line break, two or more
# (a blank line between) are a paragraph break.
_NEWLINES_RE = re.compile(r"\n(?:[^\S\n]*+\n)*+")
# Whitespace run starting at a position (used to find the first character after a candidate).
_SPACE_RE = re.compile(r"\s*+")

# Abbreviations after which a period does not end a sentence (without the final period).
_ABBREVIATIONS: frozenset[str] = frozenset(
    {
        "Mr", "Mrs", "Ms", "Dr", "Prof", "St", "Jr", "Sr", "Gen", "Col", "Lt", "Sgt", "Capt",
        "Gov", "Sen", "Rep", "Rev", "Hon", "Pres", "No", "vs", "etc", "e.g", "i.e", "Inc", "Ltd",
        "Co", "Corp", "Jan", "Feb", "Mar", "Apr", "Jun", "Jul", "Aug", "Sep", "Sept", "Oct",
        "Nov", "Dec", "U.S", "U.K", "U.N",
    }
)  # fmt: skip
# Lower-case entries also match when capitalised ("Etc.", "E.g."). Other case variants do not:
# "NO." or "no." usually ends a sentence ("He said no. Then…").
_ABBREVIATION_KEYS: frozenset[str] = _ABBREVIATIONS | {
    abbr[0].upper() + abbr[1:] for abbr in _ABBREVIATIONS if abbr.islower()
}
# How far back to look for the word before a period (the longest abbreviation is short).
_WORD_LOOKBACK = 12

_BROKEN_MIN_LINE = 60  # a paragraph-break continuation needs a line longer than this
_SHORT_LINE = 80  # a single newline after a line this short without punctuation ends a sentence
# ...unless the line is longer than this and the next starts in lower case: hard-wrapped prose
# (e-mail style, ~72 columns), which would otherwise be cut at every line.
_WRAPPED_MIN_LINE = 40
_CASELESS_MIN_LETTERS = 200  # shorter texts are too small to judge their use of capitals


def _word_before(text: str, pos: int) -> str:
    """The letters-and-dots word ending at `pos` (exclusive), e.g. "U.S" before "U.S.".

    Bounded look-back keeps this O(1) per candidate even inside a run of letters.
    """
    i = pos
    lo = max(0, pos - _WORD_LOOKBACK)
    while i > lo and (text[i - 1].isalpha() or text[i - 1] == "."):
        i -= 1
    if i == lo and lo > 0 and (text[lo - 1].isalpha() or text[lo - 1] == "."):
        return ""  # longer than any abbreviation or run of initials we recognise
    return text[i:pos]


def _is_initials(word: str) -> bool:
    """True for "J" (an initial) and "J.R.R" / "U.S" (dotted initials)."""
    parts = word.split(".")
    return all(len(p) == 1 and p.isalpha() for p in parts) and (len(parts) > 1 or word.isupper())


def _starts_sentence(ch: str, caseless: bool = False) -> bool:
    """Can `ch` begin a new sentence? Upper-case letters, digits, opening quotes/brackets.

    Letters of scripts without case (Arabic, CJK, …) count too: there, case gives no signal,
    and refusing them would glue whole articles into one sentence. For the same reason any
    letter counts in a text written (or normalised) entirely in lower case.
    """
    if ch.isdigit() or ch in _OPENERS:
        return True
    return ch.isalpha() and (caseless or not ch.islower())


def _is_caseless(text: str) -> bool:
    """Is `text` prose without capitals (e.g. a lower-cased corpus), where case says nothing?"""
    upper = sum(1 for ch in text if ch.isupper())
    lower = sum(1 for ch in text if ch.islower())
    return lower >= _CASELESS_MIN_LETTERS and upper * 200 < lower


def _is_broken_paragraph(line: str) -> bool:
    """Is a blank line after `line` an artefact (a wrap inside a sentence), not a paragraph end?

    Scraped articles often break a sentence with a blank line ("…with the\\n\\nChairwoman…").
    Prose lines that stop mid-sentence end with a lower-case letter or a comma and are long;
    headlines are shorter or mostly capitalised words.
    """
    if len(line) <= _BROKEN_MIN_LINE:
        return False
    last = line[-1]
    if not (last == "," or last.islower()):
        return False
    words = line.split()
    capitalised = sum(1 for w in words if w[0].isupper())
    return 2 * capitalised < len(words)


def _punctuation_cuts(text: str) -> list[int]:
    """Positions (just after punctuation and closers) where a sentence ends."""
    cuts: list[int] = []
    n = len(text)
    caseless = _is_caseless(text)
    for m in _PUNCT_RE.finditer(text):
        end = m.end()
        nxt = _SPACE_RE.match(text, end).end()  # type: ignore[union-attr]
        if nxt >= n or not _starts_sentence(text[nxt], caseless):
            continue
        punct_end = m.start()
        while punct_end < n and text[punct_end] in _TERMINALS:
            punct_end += 1
        if punct_end - m.start() == 1 and text[m.start()] == ".":
            word = _word_before(text, m.start())
            if word in _ABBREVIATION_KEYS or (word and _is_initials(word)):
                continue
        cuts.append(end)
    return cuts


def _line_cuts(text: str) -> tuple[list[int], list[int]]:
    """Sentence cuts at line breaks: (single-newline cuts, paragraph-break cuts)."""
    line_cuts: list[int] = []
    para_cuts: list[int] = []
    line_start = 0
    for m in _NEWLINES_RE.finditer(text):
        a, b = m.span()
        line = text[line_start:a].strip()
        line_start = b
        if text.count("\n", a, b) >= 2:
            if not (line and _is_broken_paragraph(line)):
                para_cuts.append(a)
        elif (
            line
            and len(line) <= _SHORT_LINE
            and line.rstrip(_CLOSERS)[-1:] not in _TERMINALS
            and not (len(line) > _WRAPPED_MIN_LINE and _continues_lowercase(text, b))
        ):
            line_cuts.append(a)
    return line_cuts, para_cuts


def _continues_lowercase(text: str, pos: int) -> bool:
    """Does the next line start with a lower-case letter (hard-wrapped prose, not a list)?"""
    nxt = _SPACE_RE.match(text, pos).end()  # type: ignore[union-attr]
    return nxt < len(text) and text[nxt].islower()


def strip_span(text: str, start: int, end: int) -> tuple[int, int]:
    """`[start, end)` without its leading and trailing whitespace (empty: `start == end`)."""
    piece = text[start:end]
    stripped = piece.lstrip()
    start += len(piece) - len(stripped)
    return start, start + len(stripped.rstrip())


def split_sentences(text: str) -> list[Sentence]:
    """Split `text` into sentences with exact offsets and paragraph indices.

    Sentences end at terminal punctuation followed by whitespace and a capital/digit/opening
    quote (except after abbreviations and initials), at paragraph breaks (blank lines, unless
    the break looks like a wrap inside a sentence), and at single newlines after short
    unpunctuated lines (headings, list items). Whitespace between sentences belongs to none.
    """
    if not text or text.isspace():
        return []
    cuts: dict[int, bool] = {}  # position -> starts a new paragraph
    for pos in _punctuation_cuts(text):
        cuts[pos] = False
    line_cuts, para_cuts = _line_cuts(text)
    for pos in line_cuts:
        cuts.setdefault(pos, False)
    for pos in para_cuts:
        cuts[pos] = True
    cuts.setdefault(len(text), False)

    sentences: list[Sentence] = []
    paragraph = 0
    pending_paragraph = False
    prev = 0
    for pos in sorted(cuts):
        start, end = strip_span(text, prev, pos)
        if end > start:
            if pending_paragraph and sentences:
                paragraph += 1
            pending_paragraph = False
            sentences.append(Sentence(start, end, paragraph))
        if cuts[pos]:
            pending_paragraph = True
        prev = pos
    return sentences
