"""Where a passage of one copy of a story stands in another copy: word-level alignment.

    align(source_text, copy_text).map_span(start, end) → (start, end) in the copy | None

`Alignment.map_span` returns offsets into the copy's own text (`copy_text[start:end]` is the
matching passage there), or None when less than `min_coverage` of the span's words are
aligned; words (`rag.ingest.near_duplicates.words`: letter/digit runs of the NFKC, case-folded text)
are aligned on runs of at least `ALIGN_WORDS` equal normalised words. Pure and deterministic.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from difflib import SequenceMatcher

from rag.ingest.near_duplicates import Word, words

ALIGN_WORDS = 3  # the shortest run of equal words that anchors an alignment


@dataclass(frozen=True, slots=True)
class Alignment:
    """Word-level alignment of a source text with a copy: `pairs[i]` is the index of the copy
    word aligned with source word i, or -1."""

    source_words: tuple[Word, ...]
    copy_words: tuple[Word, ...]
    pairs: tuple[int, ...]
    copy_text: str

    def map_span(self, start: int, end: int, min_coverage: float = 0.5) -> tuple[int, int] | None:
        """The copy's span matching the source's `[start, end)`: from the copy word aligned
        with the span's first aligned word to the one aligned with its last; when those are
        the span's own first and last words, widened over the punctuation next to them in the
        copy as far as the source span reaches past them (a quote mark, a final period).
        None when fewer than `min_coverage` of the span's words are aligned."""
        lo = bisect_right([w.end for w in self.source_words], start)  # first word ending after
        hi = bisect_left([w.start for w in self.source_words], end)  # first word from `end` on
        aligned = [i for i in range(lo, hi) if self.pairs[i] >= 0]
        if hi <= lo or len(aligned) < min_coverage * (hi - lo):
            return None
        s = self.copy_words[self.pairs[aligned[0]]].start
        e = self.copy_words[self.pairs[aligned[-1]]].end
        if aligned[0] == lo and self.source_words[lo].start > start:
            s = _widen(self.copy_text, s, -1)
        if aligned[-1] == hi - 1 and self.source_words[hi - 1].end < end:
            e = _widen(self.copy_text, e, 1)
        return s, e


def align(source_text: str, copy_text: str) -> Alignment:
    """Align two texts known to be copies (`group_copies`) word by word: runs of at least
    `ALIGN_WORDS` equal normalised words, in order (difflib on word n-grams)."""
    src, dst = words(source_text), words(copy_text)
    grams = SequenceMatcher(None, _grams(src), _grams(dst), autojunk=False)
    pairs = [-1] * len(src)
    shortest = min(ALIGN_WORDS, len(src), len(dst))
    for i, j, n in grams.get_matching_blocks():
        run = min(n + ALIGN_WORDS - 1, len(src) - i, len(dst) - j) if n else 0
        if run < shortest:  # the texts' last words alone (their grams are shorter): no anchor
            continue
        for k in range(run):
            if pairs[i + k] < 0 and src[i + k].norm == dst[j + k].norm:
                pairs[i + k] = j + k
    return Alignment(tuple(src), tuple(dst), tuple(pairs), copy_text)


def map_span(source_text: str, start: int, end: int, copy_text: str) -> tuple[int, int] | None:
    """`align(source_text, copy_text).map_span(start, end)` for one span."""
    return align(source_text, copy_text).map_span(start, end)


def _grams(ws: list[Word]) -> list[str]:
    """Each word with the next `ALIGN_WORDS - 1` (fewer at the end): what difflib compares."""
    return [" ".join(w.norm for w in ws[i : i + ALIGN_WORDS]) for i in range(len(ws))]


def _widen(text: str, pos: int, step: int) -> int:
    """Move from `pos` by `step` (±1) over adjacent punctuation (not letters, digits, spaces)."""
    look = -1 if step < 0 else 0
    while 0 <= pos + look < len(text) and not (
        text[pos + look].isspace() or text[pos + look].isalnum()
    ):
        pos += step
    return pos
